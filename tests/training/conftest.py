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
