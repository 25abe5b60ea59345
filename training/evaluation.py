"""Classification evaluation: metrics, per-class report, confusion matrix, errors, ensembles."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

CONFUSION_PNG = "confusion_matrix.png"
MISCLASSIFIED_CSV = "misclassified.csv"
METRICS_JSON = "metrics.json"


def predict_proba(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    *,
    pairs: Sequence[str] | None = None,
    max_length: int = 128,
    batch_size: int = 64,
    progress: str | None = None,
    multi_label: bool = False,
) -> FloatArray:
    """Softmax probabilities of a sequence-classification model (a sigmoid per label with
    `multi_label`), batched by length for speed."""
    import torch

    from training._progress import track

    model.eval()
    device = next(model.parameters()).device
    # Sorting by length keeps padding per batch small; results are put back in input order.
    order = np.argsort([len(t) + (len(pairs[i]) if pairs else 0) for i, t in enumerate(texts)])
    out = np.zeros((len(texts), model.config.num_labels), dtype=np.float64)
    starts = range(0, len(texts), batch_size)
    with torch.inference_mode():
        for start in track(
            starts, description=progress or "predicting", enabled=progress is not None
        ):
            idx = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in idx],
                [pairs[i] for i in idx] if pairs else None,
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            ).to(device)
            logits = model(**batch).logits.float()
            probs = torch.sigmoid(logits) if multi_label else torch.softmax(logits, dim=-1)
            out[idx] = probs.cpu().numpy()
    return out


def classification_metrics(
    gold: Sequence[int], predicted: Sequence[int], label_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, and the per-class report (scikit-learn)."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        precision_recall_fscore_support,
    )

    labels = list(range(len(label_names)))
    p, r, f, _ = precision_recall_fscore_support(
        gold, predicted, labels=labels, average="macro", zero_division=0
    )
    report = classification_report(
        gold,
        predicted,
        labels=labels,
        target_names=list(label_names),
        output_dict=True,
        zero_division=0,
    )
    return {
        "accuracy": float(accuracy_score(gold, predicted)),
        "precision_macro": float(p),
        "recall_macro": float(r),
        "f1_macro": float(f),
        "per_class": {name: {k: float(v) for k, v in report[name].items()} for name in label_names},
        "rows": len(gold),
    }


def plot_confusion(
    gold: Sequence[int], predicted: Sequence[int], label_names: Sequence[str], path: Path
) -> Path:
    """Save the confusion matrix (counts, rows = gold) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # headless: servers and CI have no display
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.0, 1.1 * len(label_names))
    fig, ax = plt.subplots(figsize=(size + 1, size))
    ConfusionMatrixDisplay.from_predictions(
        gold,
        predicted,
        labels=list(range(len(label_names))),
        display_labels=list(label_names),
        ax=ax,
        colorbar=False,
        cmap="Blues",
        xticks_rotation=45,
    )
    ax.set_title("Confusion matrix (rows: gold)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_misclassified(
    path: Path,
    texts: Sequence[str],
    gold: Sequence[int],
    probs: FloatArray,
    label_names: Sequence[str],
    pairs: Sequence[str] | None = None,
) -> int:
    """Write the misclassified rows (text, gold, predicted, confidence), most confident first."""
    predicted = probs.argmax(axis=1)
    wrong = [i for i in range(len(texts)) if predicted[i] != gold[i]]
    wrong.sort(key=lambda i: -probs[i, predicted[i]])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            ["row", "text", *(["text_pair"] if pairs else []), "gold", "predicted", "confidence"]
        )
        for i in wrong:
            writer.writerow(
                [
                    i,
                    texts[i],
                    *([pairs[i]] if pairs else []),
                    label_names[gold[i]],
                    label_names[predicted[i]],
                    f"{probs[i, predicted[i]]:.4f}",
                ]
            )
    return len(wrong)


def report_classification(
    texts: Sequence[str],
    gold: Sequence[int],
    probs: FloatArray,
    label_names: Sequence[str],
    out_dir: Path | None,
    *,
    pairs: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics plus, when `out_dir` is given, metrics.json, the confusion PNG and errors CSV."""
    predicted = probs.argmax(axis=1).tolist()
    metrics = classification_metrics(gold, predicted, label_names)
    metrics.update(extra or {})
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        plot_confusion(gold, predicted, label_names, out_dir / CONFUSION_PNG)
        metrics["misclassified"] = write_misclassified(
            out_dir / MISCLASSIFIED_CSV, texts, gold, probs, label_names, pairs
        )
        metrics["files"] = {"confusion_matrix": CONFUSION_PNG, "misclassified": MISCLASSIFIED_CSV}
        (out_dir / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics


def soft_vote(probabilities: Sequence[FloatArray]) -> FloatArray:
    """Ensemble by averaging the members' probabilities."""
    return np.asarray(np.mean(np.stack(probabilities), axis=0), dtype=np.float64)


def majority_vote(probabilities: Sequence[FloatArray]) -> FloatArray:
    """Ensemble by majority of the members' argmax; ties go to the higher mean probability.

    Returns one-hot-like scores (vote share plus a tiny mean-probability tie-break) so the
    result plugs into the same reporting as probabilities.
    """
    stacked = np.stack(probabilities)
    votes = np.zeros(stacked.shape[1:], dtype=np.float64)
    for member in stacked:
        votes[np.arange(member.shape[0]), member.argmax(axis=1)] += 1.0
    shares = votes / len(probabilities)
    return np.asarray(shares + 1e-6 * stacked.mean(axis=0), dtype=np.float64)
