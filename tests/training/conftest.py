"""Fixtures for training tests: small generated topic data in several file formats."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

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


def write_rows_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    """`make_rows` output as a CSV file (title, description, label)."""
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["title", "description", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def topic_config(root: Path, base_model: Path, **overrides: Any) -> Any:
    """A ClassifyConfig on 320 generated training rows and 80 test rows written under `root`
    (train.csv, test.csv), learnable by a tiny BERT in a few seconds."""
    from training.pipelines.classification import ClassifyConfig
    from training.trainer import Hyperparameters

    write_rows_csv(root / "train.csv", make_rows(320))
    write_rows_csv(root / "test.csv", make_rows(80, seed=7))
    settings: dict[str, Any] = {
        "data": str(root / "train.csv"),
        "eval_data": str(root / "test.csv"),
        "text_columns": ["title", "description"],
        "base_model": str(base_model),
        "output": root / "artifact",
        "work_dir": root / "run",
        "hp": Hyperparameters(
            learning_rate=3e-3,
            epochs=6,
            batch_size=16,
            layer_decay=0.9,
            early_stopping_patience=None,
        ),
    }
    return ClassifyConfig(**{**settings, **overrides})


def tfidf_nb_pipeline(alpha: float) -> Any:
    """The pipeline training/baseline.py documents (TF-IDF word 1-2 grams, sublinear tf, then
    multinomial Naive Bayes), built here independently of it to check its figures."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True),
        MultinomialNB(alpha=alpha),
    )


@pytest.fixture
def topic_csv(tmp_path: Path) -> Path:
    return write_rows_csv(tmp_path / "topics.csv", make_rows(240))


@pytest.fixture
def topic_test_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "topics_test.jsonl"
    path.write_text(
        "\n".join(json.dumps(r) for r in make_rows(80, seed=1)) + "\n", encoding="utf-8"
    )
    return path


# The shape of a user's help-desk export: integer category codes 1..12 (no 0), 69% of the rows
# in code 1, a long tail, and code 12 on a single row. Each code has its own words, all in the
# tiny BERT's vocabulary, so a model can learn them.
HELPDESK_WORDS = {
    1: ["software", "computer", "web"],
    2: ["market", "stock", "shares"],
    3: ["game", "team", "win"],
    4: ["war", "president", "minister"],
    5: ["profit", "bank", "price"],
    6: ["season", "coach", "player"],
    7: ["election", "police", "government"],
    8: ["internet", "space", "nasa"],
    9: ["oil", "sales", "deal"],
    10: ["paris", "london", "berlin"],
    11: ["google", "apple", "reuters"],
    12: ["john", "smith", "mary"],
}
#: Rows per code in 200: 138 (69%) in code 1, then the tail, code 12 once.
HELPDESK_COUNTS = {1: 138, 2: 14, 3: 10, 4: 8, 5: 7, 6: 6, 7: 5, 8: 4, 9: 3, 10: 2, 11: 2, 12: 1}


def write_helpdesk_csv(path: Path, *, seed: int = 0, counts: dict[int, int] | None = None) -> Path:
    """A CSV (subject, body, category) shaped like the user's export (HELPDESK_COUNTS by
    default), rows shuffled."""
    import csv

    rng = random.Random(seed)
    rows = []
    for code, n in (counts or HELPDESK_COUNTS).items():
        for _ in range(n):
            words = rng.sample(HELPDESK_WORDS[code], 2) + rng.sample(FILLER, 3)
            rng.shuffle(words)
            rows.append({"subject": words[0], "body": " ".join(words[1:]), "category": code})
    rng.shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["subject", "body", "category"])
        writer.writeheader()
        writer.writerows(rows)
    return path
