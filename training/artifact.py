"""Write a trained model as a versioned artifact directory and load it back, verified."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from inference import auto_model_class, mean_pooled
from schemas import FileRole, ModelManifest, TaskKind
from schemas.artifact import read_manifest, with_files, write_manifest

LABELS_FILE = "labels.json"
TRAINING_CONFIG_FILE = "training_config.json"
METRICS_FILE = "metrics.json"


def new_version() -> str:
    """A sortable artifact version: the UTC time of saving, to the second."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def next_version(previous: str) -> str:
    """A version later than `previous`, for an artifact changed in place (waits out the rest
    of the second if need be: readers reload on a changed version, so it must change)."""
    while (version := new_version()) <= previous:
        time.sleep(0.05)
    return version


def _role(name: str) -> FileRole:
    if name.endswith(".safetensors") or name.endswith(".bin"):
        return FileRole.WEIGHTS
    if name in ("config.json", "generation_config.json"):
        return FileRole.CONFIG
    if name == LABELS_FILE:
        return FileRole.LABELS
    if name == TRAINING_CONFIG_FILE:
        return FileRole.TRAINING_CONFIG
    if name == METRICS_FILE:
        return FileRole.METRICS
    if "token" in name or name in (
        "vocab.txt",
        "merges.txt",
        "spm.model",
        "sentencepiece.bpe.model",
    ):
        return FileRole.TOKENIZER
    return FileRole.OTHER


def save_artifact(
    out_dir: Path | str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    manifest: ModelManifest,
    *,
    training_config: dict[str, Any] | None = None,
    extra_files: dict[Path, FileRole] | None = None,
) -> ModelManifest:
    """Save weights (safetensors), tokenizer, labels, config and metrics, then the manifest.

    `manifest.files` is filled with every file's sha256; files already in `out_dir` that the
    caller lists in `extra_files` (plots, reports) are checksummed too.
    """
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(root, safe_serialization=True)
    tokenizer.save_pretrained(root)
    (root / LABELS_FILE).write_text(json.dumps(manifest.labels, indent=2) + "\n", encoding="utf-8")
    training = training_config if training_config is not None else manifest.training
    (root / TRAINING_CONFIG_FILE).write_text(
        json.dumps(training, indent=2, default=str) + "\n", encoding="utf-8"
    )
    (root / METRICS_FILE).write_text(
        json.dumps(manifest.metrics, indent=2, default=str) + "\n", encoding="utf-8"
    )
    files: dict[Path, FileRole] = {
        p: _role(p.name)
        for p in sorted(root.iterdir())
        if p.is_file()
        and p.name != "manifest.json"
        and not p.name.endswith(".tmp")
        and _role(p.name) is not FileRole.OTHER
    }
    files.update(extra_files or {})
    manifest = with_files(manifest.model_copy(update={"training": training}), root, files)
    write_manifest(manifest, root)
    return manifest


def load_artifact(
    path: Path | str, *, verify: bool = True
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, ModelManifest]:
    """Load model, tokenizer and manifest of an artifact, verifying checksums first."""
    root = Path(path)
    manifest = read_manifest(root, verify=verify)
    model = auto_model_class(manifest.task, manifest.pooling).from_pretrained(root)
    if manifest.pooling == "mean":
        model = mean_pooled(model)
    tokenizer = AutoTokenizer.from_pretrained(root)
    return model, tokenizer, manifest


_PIPELINE_TASKS = {
    TaskKind.CLASSIFICATION: "text-classification",
    TaskKind.PAIR_CLASSIFICATION: "text-classification",
    TaskKind.TOKEN_CLASSIFICATION: "token-classification",
    TaskKind.QUESTION_ANSWERING: "question-answering",
}


def artifact_pipeline(path: Path | str, **kwargs: Any) -> Any:
    """A `transformers.pipeline` over an artifact, its model loaded as trained (a mean-pooled
    classifier included, which `pipeline(model=DIR)` alone would read as a [CLS] classifier
    with an untrained head). `kwargs` go to `pipeline` (device, aggregation_strategy...)."""
    from transformers import pipeline

    model, tokenizer, manifest = load_artifact(path)
    task = _PIPELINE_TASKS.get(manifest.task)
    if task is None:
        raise ValueError(f"no transformers pipeline reads a {manifest.task.value} artifact")
    build: Any = pipeline  # its overloads are keyed by literal task names
    return build(task, model=model, tokenizer=tokenizer, **kwargs)
