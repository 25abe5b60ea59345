"""Multi-label decisions and figures: per-label thresholds tuned on validation, micro/macro/samples
F1, per-label precision/recall, subset accuracy, Hamming loss, and the report files."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Thresholds tried; strictly inside (0, 1) as the manifest requires.
THRESHOLD_GRID = tuple(round(0.01 * i, 2) for i in range(1, 100))
#: A label needs this many validation positives for a threshold of its own; fewer, and its F1
#: curve is a handful of points, so it takes the global threshold instead.
#: The threshold of labels too rare to tune one for, when they are rare even together.
DEFAULT_THRESHOLD = 0.5
MIN_POSITIVES = 5
METRICS_JSON = "metrics.json"
ERRORS_CSV = "misclassified.csv"


def sigmoid(logits: Any) -> np.ndarray:
    """Independent per-label probabilities, stable for large logits of either sign."""
    x = np.asarray(logits, dtype=np.float64)
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -x))
    return out


def decide(probs: Any, thresholds: Sequence[float]) -> np.ndarray:
    """The (rows, labels) 0/1 decisions: a label is on at or above its threshold."""
    return (np.asarray(probs) >= np.asarray(thresholds)[None, :]).astype(np.int64)


def _f1_by_threshold(probs: np.ndarray, gold: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """(labels, thresholds) F1 of each label at each threshold."""
    on = probs[:, :, None] >= grid[None, None, :]
    positive = gold[:, :, None].astype(bool)
    tp = (on & positive).sum(axis=0)
    fp = (on & ~positive).sum(axis=0)
    fn = (~on & positive).sum(axis=0)
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def _middle_of_best(scores: np.ndarray, grid: np.ndarray) -> float:
    """The threshold in the middle of those reaching the best score: on a flat stretch of the
    curve, the middle is the choice least tied to this sample's exact probabilities."""
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(grid[best[len(best) // 2]])


@dataclass(frozen=True)
class Thresholds:
    """Per-label thresholds and how they were chosen."""

    values: list[float]
    global_threshold: float
    tuned: list[bool]

    @property
    def report(self) -> dict[str, Any]:
        return {
            "global": self.global_threshold,
            "labels_with_own_threshold": int(sum(self.tuned)),
            "labels_with_global_threshold": int(len(self.tuned) - sum(self.tuned)),
            "min_validation_positives": MIN_POSITIVES,
        }


def tune_thresholds(probs: Any, gold: Any, *, min_positives: int = MIN_POSITIVES) -> Thresholds:
    """Each label's threshold maximising its F1 on these (validation) rows. Labels with fewer
    than `min_positives` positives (or no F1 at any threshold) share one global threshold,
    chosen for the micro-F1 of those labels alone (frequent labels would pull it to their own
    best, far from what suits rare ones), or 0.5 when they have too few positives together."""
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(gold, dtype=np.int64)
    grid = np.asarray(THRESHOLD_GRID)
    per_label = _f1_by_threshold(p, y, grid)
    support = y.sum(axis=0)
    tuned = [
        bool(support[j] >= min_positives and per_label[j].max() > 0) for j in range(y.shape[1])
    ]
    rest = [j for j, own in enumerate(tuned) if not own]
    global_threshold = DEFAULT_THRESHOLD
    if rest and support[rest].sum() >= min_positives:
        on = p[:, rest, None] >= grid[None, None, :]
        positive = y[:, rest, None].astype(bool)
        tp = (on & positive).sum(axis=(0, 1))
        wrong = (on != positive).sum(axis=(0, 1))
        micro = np.where(tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0)
        if micro.max() > 0:
            global_threshold = _middle_of_best(micro, grid)
    values = [
        _middle_of_best(per_label[j], grid) if own else global_threshold
        for j, own in enumerate(tuned)
    ]
    return Thresholds(values=values, global_threshold=global_threshold, tuned=tuned)


def multilabel_metrics(gold: Any, predicted: Any, label_names: Sequence[str]) -> dict[str, Any]:
    """Micro/macro/samples F1 (with precision and recall), subset accuracy, Hamming loss and
    the per-label report, from (rows, labels) 0/1 matrices."""
    from sklearn.metrics import (
        accuracy_score,
        hamming_loss,
        precision_recall_fscore_support,
    )

    y, yhat = np.asarray(gold), np.asarray(predicted)
    out: dict[str, Any] = {}
    for average in ("micro", "macro", "samples"):
        p, r, f, _ = precision_recall_fscore_support(y, yhat, average=average, zero_division=0)
        out[f"precision_{average}"] = float(p)
        out[f"recall_{average}"] = float(r)
        out[f"f1_{average}"] = float(f)
    p, r, f, s = precision_recall_fscore_support(y, yhat, average=None, zero_division=0)
    out["subset_accuracy"] = float(accuracy_score(y, yhat))
    out["hamming_loss"] = float(hamming_loss(y, yhat))
    out["per_label"] = {
        name: {
            "precision": float(p[j]),
            "recall": float(r[j]),
            "f1": float(f[j]),
            "support": int(s[j]),
        }
        for j, name in enumerate(label_names)
    }
    out["rows"] = int(y.shape[0])
    return out


def write_errors(
    path: Path,
    texts: Sequence[str],
    gold: np.ndarray,
    predicted: np.ndarray,
    probs: np.ndarray,
    label_names: Sequence[str],
) -> int:
    """Rows whose predicted label set differs from the gold one, with the labels missed and
    added and their probabilities."""
    wrong = np.flatnonzero((gold != predicted).any(axis=1))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "text", "gold", "predicted", "missed", "added"])

        def names(row: int, columns: np.ndarray) -> str:
            return "|".join(f"{label_names[int(j)]}:{probs[row, j]:.3f}" for j in columns)

        def joined(columns: np.ndarray) -> str:
            return "|".join(label_names[int(j)] for j in columns)

        for i in (int(r) for r in wrong):
            writer.writerow(
                [
                    i,
                    texts[i],
                    joined(np.flatnonzero(gold[i])),
                    joined(np.flatnonzero(predicted[i])),
                    names(i, np.flatnonzero(gold[i] & (1 - predicted[i]))),
                    names(i, np.flatnonzero(predicted[i] & (1 - gold[i]))),
                ]
            )
    return len(wrong)


def report_multilabel(
    texts: Sequence[str],
    gold: np.ndarray,
    probs: np.ndarray,
    thresholds: Sequence[float],
    label_names: Sequence[str],
    out_dir: Path | None,
    *,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The figures at `thresholds`; with `out_dir`, metrics.json and the wrong rows' CSV."""
    predicted = decide(probs, thresholds)
    metrics = multilabel_metrics(gold, predicted, label_names)
    metrics.update(extra or {})
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        metrics["misclassified"] = write_errors(
            out_dir / ERRORS_CSV, texts, gold, predicted, probs, label_names
        )
        metrics["files"] = {"misclassified": ERRORS_CSV}
        (out_dir / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
