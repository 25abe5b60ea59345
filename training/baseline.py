"""TF-IDF + Naive Bayes baseline trained on the same rows as the fine-tuned model."""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.data import LabelledTexts
from training.evaluation import classification_metrics

ALPHAS = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass
class BaselineResult:
    metrics: dict[str, Any]
    alpha: float
    model: Any


def _text(data: LabelledTexts) -> list[str]:
    if data.pairs is None:
        return data.texts
    return [f"{a} [SEP] {b}" for a, b in zip(data.texts, data.pairs, strict=True)]


def train_baseline(
    train: LabelledTexts, val: LabelledTexts, test: LabelledTexts | None = None
) -> BaselineResult:
    """Fit TF-IDF (word 1-2 grams) + multinomial NB; pick alpha on validation, report on test.

    The smoothing alpha is chosen on the validation split like the fine-tuned model's epoch,
    so the comparison is fair and neither side sees the test set.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    def build(alpha: float) -> Any:
        return make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, lowercase=True),
            MultinomialNB(alpha=alpha),
        )

    scores = {}
    for alpha in ALPHAS:
        scores[alpha] = build(alpha).fit(_text(train), train.labels).score(_text(val), val.labels)
    alpha = max(scores, key=lambda a: scores[a])
    start = time.perf_counter()
    model = build(alpha).fit(_text(train), train.labels)
    fit_seconds = time.perf_counter() - start
    target = test if test is not None else val
    texts = _text(target)
    start = time.perf_counter()
    predicted = model.predict(texts)
    seconds = time.perf_counter() - start
    metrics = classification_metrics(
        target.labels, np.asarray(predicted).tolist(), train.label_names
    )
    metrics.update(
        {
            "model": "tfidf-1-2gram+multinomial-nb",
            "alpha": alpha,
            "validation_accuracy": float(scores[alpha]),
            "fit_seconds": fit_seconds,
            "latency_ms_per_text": 1000.0 * seconds / max(1, len(texts)),
            "size_bytes": len(pickle.dumps(model)),
            "evaluated_on": target.ref.split or target.ref.source,
        }
    )
    return BaselineResult(metrics=metrics, alpha=alpha, model=model)
