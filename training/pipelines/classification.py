"""Train a text classifier end to end: data, fine-tuning, evaluation, baseline, artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import ModelManifest, Pooling, TaskKind
from training._pipeline import train_evaluate_save
from training.baseline import train_baseline
from training.data import (
    LabelledTexts,
    check_trainable,
    load_labelled_texts,
    train_validation_split,
)
from training.models import DEFAULT_BASE_MODEL
from training.tasks.classification import ClassificationTask
from training.trainer import Hyperparameters

ClassWeight = Literal["none", "balanced", "sqrt"]


class ClassifyConfig(BaseSettings):
    """Everything `textroute train classify` needs; env vars TEXTROUTE_TRAIN_*, CLI flags win."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_TRAIN_", env_nested_delimiter="__")

    data: str = Field(description="Training data: local CSV/TSV/JSONL/parquet or Hub dataset.")
    split: str | None = "train"
    eval_data: str | None = Field(None, description="Held-out test data, reported only.")
    eval_split: str | None = "test"
    text_columns: list[str] = Field(default_factory=lambda: ["text"])
    eval_text_columns: list[str] | None = Field(
        None, description="Text column(s) of --eval-data when they differ; default text_columns."
    )
    pair_column: str | None = None
    label_column: str = "label"
    label_names: list[str] | None = None
    base_model: str = DEFAULT_BASE_MODEL
    name: str = "classifier"
    output: Path = Path("models/classifier")
    work_dir: Path | None = None
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    limit: int | None = Field(None, ge=2)
    eval_limit: int | None = Field(None, ge=1)
    baseline: bool = True
    hp_search: int = Field(0, ge=0, description="Optuna trials before the final run.")
    resume: bool = False
    metric: str = "accuracy"
    pooling: Pooling = Field(
        "cls", description="Head over [CLS] ('cls') or over the mean of the tokens ('mean')."
    )
    lexical: bool = Field(
        True,
        description="Fit a TF-IDF + logistic-regression expert on the training rows and fuse it "
        "with the encoder when that gains on validation (single-text classifiers).",
    )
    class_weight: ClassWeight = Field(
        "none",
        description="Weight the loss by class: 'balanced' (n / (classes x rows of the class)), "
        "'sqrt' (its square root: half way) or 'none'.",
    )
    hp: Hyperparameters = Field(default_factory=Hyperparameters)


def class_weights(data: LabelledTexts, how: ClassWeight) -> list[float] | None:
    """Per-class loss weights from the training rows' class counts (None for 'none'); a
    class without rows gets 0 (it has no loss to weight)."""
    if how == "none":
        return None
    counts = np.bincount(data.labels, minlength=len(data.label_names)).astype(np.float64)
    present = counts > 0
    balanced = np.zeros_like(counts)
    balanced[present] = counts.sum() / (present.sum() * counts[present])
    weights = balanced if how == "balanced" else np.sqrt(balanced)
    return [float(w) for w in weights]


def load_splits(
    cfg: ClassifyConfig,
) -> tuple[LabelledTexts, LabelledTexts, LabelledTexts | None]:
    """Train and validation (carved from train), and the optional test split."""
    data = load_labelled_texts(
        cfg.data,
        text_columns=cfg.text_columns,
        label_column=cfg.label_column,
        pair_column=cfg.pair_column,
        split=cfg.split,
        label_names=cfg.label_names,
        limit=cfg.limit,
    )
    check_trainable(data)
    train, val = train_validation_split(data, fraction=cfg.validation_fraction, seed=cfg.hp.seed)
    test = None
    if cfg.eval_data:
        test = load_labelled_texts(
            cfg.eval_data,
            text_columns=cfg.eval_text_columns or cfg.text_columns,
            label_column=cfg.label_column,
            pair_column=cfg.pair_column,
            split=cfg.eval_split,
            label_names=data.label_names,
            limit=cfg.eval_limit,
            # Names the user gave may be indexed by integer test labels; names read from the
            # training values are values, so a test code the training rows lack is an error.
            index_labels=cfg.label_names is not None,
        )
    return train, val, test


def check_plan(cfg: ClassifyConfig, train: LabelledTexts) -> None:
    """Everything after the encoder run that the rows could break, checked before it: the
    expert's limits are warned about now (the split's were, as it was carved; the test labels
    were checked as they were loaded), not found after minutes of training."""
    from training._progress import warn

    if cfg.lexical and cfg.pair_column is None:
        from training.lexical import lexical_limits

        for message in lexical_limits(train):
            warn(message)


def train_classifier(cfg: ClassifyConfig) -> ModelManifest:
    """Fine-tune, evaluate on validation (and test when given), compare with the baseline,
    and write the artifact to `cfg.output`."""
    train, val, test = load_splits(cfg)
    check_plan(cfg, train)
    task = ClassificationTask(
        train.label_names,
        pair=cfg.pair_column is not None,
        metric=cfg.metric,
        pooling=cfg.pooling,
        class_weights=class_weights(train, cfg.class_weight),
        label_smoothing=cfg.hp.label_smoothing,
    )
    work_dir = cfg.work_dir or Path("runs") / cfg.name
    hp = cfg.hp
    search_records: list[dict[str, Any]] = []
    if cfg.hp_search:
        from training.hpsearch import search

        hp, search_records = search(
            task,
            train,
            val,
            base_model=cfg.base_model,
            work_dir=work_dir / "hpsearch",
            base=hp,
            trials=cfg.hp_search,
            seed=hp.seed,
        )
    extra: dict[str, Any] = {}
    if cfg.baseline:
        extra["baseline"] = train_baseline(train, val, test).metrics
    if search_records:
        extra["hp_search"] = search_records
    # The searched hyperparameters are the ones trained with, so they are what the artifact records.
    manifest = train_evaluate_save(
        task,
        train,
        val,
        test,
        cfg.model_copy(update={"hp": hp}),
        text_columns=[*cfg.text_columns, *([cfg.pair_column] if cfg.pair_column else [])],
        extra_metrics=extra,
        pooling=cfg.pooling,
    )
    if cfg.lexical and cfg.pair_column is None:
        from training.lexical import add_lexical

        manifest = add_lexical(cfg.output, train, val, test, seed=hp.seed)
    return manifest


def lexical_for(root: Path, cfg: ClassifyConfig) -> ModelManifest:
    """Fit and attach the lexical expert of the artifact at `root` that `cfg` (its training
    config, perhaps with other eval data) trained: the same rows and validation carve."""
    from training.lexical import add_lexical

    train, val, test = load_splits(cfg)
    check_plan(cfg.model_copy(update={"lexical": True}), train)
    return add_lexical(root, train, val, test, seed=cfg.hp.seed)


__all__ = [
    "ClassWeight",
    "ClassifyConfig",
    "TaskKind",
    "check_plan",
    "class_weights",
    "lexical_for",
    "train_classifier",
]
