"""NER evaluation with seqeval: entity-level scores, per-type confusion, misclassified sentences."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.evaluation import CONFUSION_PNG, METRICS_JSON, MISCLASSIFIED_CSV, plot_confusion
from training.formats._iob import OUTSIDE, split_tag

Span = tuple[str, int, int]  # (type, first word, last word inclusive), as seqeval gives them

_AVERAGES = ("micro avg", "macro avg", "weighted avg")


def seqeval_scores(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Entity-level precision/recall/F1 (conlleval rules, micro-averaged), token accuracy, and
    the same scores per entity type."""
    from seqeval.metrics import accuracy_score, classification_report

    gold_lists = [list(s) for s in gold]
    pred_lists = [list(s) for s in predicted]
    report = classification_report(gold_lists, pred_lists, output_dict=True, zero_division=0)
    micro = report.get(
        "micro avg", {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 0}
    )
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "accuracy": float(accuracy_score(gold_lists, pred_lists)) if gold_lists else 0.0,
        "entities": int(micro["support"]),
        "per_type": {
            kind: {
                "precision": float(v["precision"]),
                "recall": float(v["recall"]),
                "f1": float(v["f1-score"]),
                "support": int(v["support"]),
            }
            for kind, v in report.items()
            if kind not in _AVERAGES
        },
    }


def spans(tags: Sequence[str]) -> list[Span]:
    """Entity spans of one sentence's tags (seqeval's reading, so scores and summary agree)."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, start, end) for kind, start, end in get_entities(list(tags))]


def entity_confusion(
    gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]
) -> dict[str, dict[str, Any]]:
    """Per gold type: how its entities were predicted. `correct` (same span and type),
    `wrong_type` (same span, counted by the predicted type), `boundary` (overlapping span of
    the same type), `boundary_and_type` (overlapping, other type), `missed` (nothing overlaps);
    and per predicted type, `spurious` predictions that overlap no gold entity."""
    summary: dict[str, dict[str, Any]] = {}

    def row(kind: str) -> dict[str, Any]:
        return summary.setdefault(
            kind,
            {
                "gold": 0,
                "correct": 0,
                "wrong_type": Counter(),
                "boundary": 0,
                "boundary_and_type": 0,
                "missed": 0,
                "spurious": 0,
            },
        )

    for gold_tags, pred_tags in zip(gold, predicted, strict=True):
        gold_spans, pred_spans = spans(gold_tags), spans(pred_tags)
        for kind, start, end in gold_spans:
            entry = row(kind)
            entry["gold"] += 1
            overlapping = [p for p in pred_spans if p[1] <= end and start <= p[2]]
            exact = [p for p in overlapping if (p[1], p[2]) == (start, end)]
            if any(p[0] == kind for p in exact):
                entry["correct"] += 1
            elif exact:
                entry["wrong_type"][exact[0][0]] += 1
            elif any(p[0] == kind for p in overlapping):
                entry["boundary"] += 1
            elif overlapping:
                entry["boundary_and_type"] += 1
            else:
                entry["missed"] += 1
        for kind, start, end in pred_spans:
            if not any(g[1] <= end and start <= g[2] for g in gold_spans):
                row(kind)["spurious"] += 1
    for entry in summary.values():
        entry["wrong_type"] = dict(entry["wrong_type"])
    return dict(sorted(summary.items()))


def _describe(tokens: Sequence[str], tags: Sequence[str]) -> str:
    return "; ".join(f"{kind}: {' '.join(tokens[s : e + 1])}" for kind, s, e in spans(tags))


def write_misclassified(
    path: Path,
    tokens: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
) -> int:
    """CSV of the sentences whose entities differ from gold, most wrong entities first."""
    rows = []
    for i, (words, gold_tags, pred_tags) in enumerate(zip(tokens, gold, predicted, strict=True)):
        gold_set, pred_set = set(spans(gold_tags)), set(spans(pred_tags))
        errors = len(gold_set ^ pred_set)
        if errors:
            rows.append((errors, i, words, gold_tags, pred_tags))
    rows.sort(key=lambda r: (-r[0], r[1]))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["row", "sentence", "gold_entities", "predicted_entities", "errors"])
        for errors, i, words, gold_tags, pred_tags in rows:
            writer.writerow(
                [
                    i,
                    " ".join(words),
                    _describe(words, gold_tags),
                    _describe(words, pred_tags),
                    errors,
                ]
            )
    return len(rows)


def _type_of(tag: str) -> str:
    kind = split_tag(tag)[1]
    return kind or OUTSIDE


def report_ner(
    tokens: Sequence[Sequence[str]],
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    label_names: Sequence[str],
    out_dir: Path | None,
) -> dict[str, Any]:
    """seqeval scores and the confusion summary; with `out_dir`, also metrics.json, a word-level
    confusion matrix of entity types (confusion_matrix.png) and misclassified.csv."""
    metrics = seqeval_scores(gold, predicted)
    metrics["confusion"] = entity_confusion(gold, predicted)
    metrics["sentences"] = len(gold)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        types = [OUTSIDE, *sorted({split_tag(t)[1] for t in label_names} - {""})]
        index = {kind: i for i, kind in enumerate(types)}
        flat_gold = [index[_type_of(t)] for sentence in gold for t in sentence]
        flat_pred = [index[_type_of(t)] for sentence in predicted for t in sentence]
        plot_confusion(flat_gold, flat_pred, types, out_dir / CONFUSION_PNG)
        metrics["misclassified"] = write_misclassified(
            out_dir / MISCLASSIFIED_CSV, tokens, gold, predicted
        )
        metrics["files"] = {"confusion_matrix": CONFUSION_PNG, "misclassified": MISCLASSIFIED_CSV}
        (out_dir / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return metrics
