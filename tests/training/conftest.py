"""Fixtures for training tests: small generated topic data in several file formats."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

TOPICS = {
    "Sports": [
        "game",
        "team",
        "win",
        "season",
        "coach",
        "player",
        "score",
        "match",
        "league",
        "cup",
    ],
    "Business": [
        "market",
        "stock",
        "shares",
        "profit",
        "bank",
        "price",
        "oil",
        "company",
        "deal",
        "sales",
    ],
    "World": [
        "war",
        "president",
        "minister",
        "election",
        "police",
        "government",
        "troops",
        "talks",
    ],
    "Sci/Tech": [
        "software",
        "internet",
        "computer",
        "space",
        "nasa",
        "science",
        "chip",
        "phone",
        "web",
    ],
}
FILLER = ["the", "a", "of", "to", "in", "and", "is", "on", "for", "with", "at", "by", "from"]


def make_rows(n: int, seed: int = 0) -> list[dict[str, str]]:
    """Generated headlines whose words give away the topic: learnable in a few steps."""
    rng = random.Random(seed)
    names = list(TOPICS)
    rows = []
    for i in range(n):
        label = names[i % len(names)]
        words = rng.sample(TOPICS[label], 4) + rng.sample(FILLER, 3)
        rng.shuffle(words)
        rows.append(
            {"title": " ".join(words[:3]), "description": " ".join(words[3:]), "label": label}
        )
    return rows


@pytest.fixture
def topic_csv(tmp_path: Path) -> Path:
    path = tmp_path / "topics.csv"
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["title", "description", "label"])
        writer.writeheader()
        writer.writerows(make_rows(240))
    return path


@pytest.fixture
def topic_test_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "topics_test.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in make_rows(80, seed=1)) + "\n", encoding="utf-8"
    )
    return path
