"""Evaluate one or several classifier artifacts on labelled data, with ensembles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inference import load_lexical
from schemas import ModelManifest, TaskKind
from training._members import load_members, report_key, write_summary
from training.data import load_labelled_texts
from training.errors import ConfigError
from training.evaluation import majority_vote, predict_proba, report_classification, soft_vote
from training.tasks._heads import HeadSlice

#: The headline figures of each member and ensemble in summary.json.
SUMMARY_KEYS = ("accuracy", "precision_macro", "recall_macro", "f1_macro")


def evaluate_models(
    models: Sequence[Path],
    *,
    data: str,
    text_columns: list[str] | None,
    label_column: str,
    split: str | None,
    output: Path,
    limit: int | None = None,
    batch_size: int = 64,
) -> dict[str, dict[str, Any]]:
    """Report each model on `data` into output/NAME, and ensembles when there are several."""
    loaded, labels = load_members(
        models, as_classifier, what="labels", rule="ensembled models must share one label map"
    )
    manifest0 = loaded[0][2]
    columns = text_columns or manifest0.text_columns[:1] or ["text"]
    pair_column = (
        manifest0.text_columns[1] if manifest0.task.value == "pair-classification" else None
    )
    dataset = load_labelled_texts(
        data,
        text_columns=columns,
        label_column=label_column,
        pair_column=pair_column,
        split=split,
        label_names=labels,
        limit=limit,
    )
    results: dict[str, dict[str, Any]] = {}
    all_probs = []
    for position, (path, (model, tokenizer, manifest)) in enumerate(
        zip(models, loaded, strict=True)
    ):
        probs = predict_proba(
            model,
            tokenizer,
            dataset.texts,
            pairs=dataset.pairs,
            max_length=manifest.max_length,
            batch_size=batch_size,
            progress=f"evaluating {path.name}",
        )
        key = report_key(path, position, results)
        extra: dict[str, Any] = {}
        lexical = load_lexical(path, manifest) if not dataset.pairs else None
        if lexical is not None:
            # Scored as served: the encoder fused with the artifact's lexical expert.
            extra["encoder_only_accuracy"] = float(
                (probs.argmax(axis=1) == np.asarray(dataset.labels)).mean()
            )
            probs = lexical.fuse(probs, dataset.texts)
        all_probs.append(probs)
        results[key] = report_classification(
            dataset.texts,
            dataset.labels,
            probs,
            labels,
            output / key,
            pairs=dataset.pairs,
            extra=extra,
        )
    if len(models) > 1:
        for name, combine in (("ensemble-soft", soft_vote), ("ensemble-majority", majority_vote)):
            results[name] = report_classification(
                dataset.texts,
                dataset.labels,
                combine(all_probs),
                labels,
                output / name,
                pairs=dataset.pairs,
            )
    write_summary(output, results, SUMMARY_KEYS)
    return results


def as_classifier(path: Path, model: Any, tokenizer: Any, manifest: ModelManifest) -> Any:
    """The artifact as a sequence classifier: as it is, or the class half of a classify-and-tag
    model (its class columns at [CLS]), with a manifest naming just the classes; any other task
    is refused with what to use instead."""
    if manifest.task in (TaskKind.CLASSIFICATION, TaskKind.PAIR_CLASSIFICATION):
        return model, tokenizer, manifest
    if manifest.task is TaskKind.CLASSIFY_AND_TAG and manifest.class_labels:
        view = HeadSlice(
            model, manifest.class_labels, len(manifest.tag_labels), first_token=True
        ).eval()
        return view, tokenizer, manifest.class_half()
    raise ConfigError(
        f"{path} is a {manifest.task.value} model; `textroute evaluate` scores classifiers "
        "(its test figures are in its metrics.json and eval/ reports)"
    )
