"""Sentence-pair (and single-sentence) GLUE-style tasks: presets, classification or regression."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas import ModelManifest
from training._pipeline import RunSettings, train_evaluate_save
from training.errors import ConfigError
from training.formats.scored import ScoredTexts, load_scored_texts
from training.pipelines.classification import ClassifyConfig, train_classifier
from training.tasks.regression import RegressionTask


@dataclass(frozen=True)
class PairPreset:
    """Columns, labels and the headline metric of a GLUE task's TSV files."""

    text_column: str
    pair_column: str | None
    label_column: str
    label_names: tuple[str, ...] = ()
    metric: str = "accuracy"
    regression: bool = False


PRESETS: dict[str, PairPreset] = {
    "sst2": PairPreset("sentence", None, "label", ("negative", "positive")),
    "mrpc": PairPreset("#1 String", "#2 String", "Quality", ("not_equivalent", "equivalent"), "f1"),
    "rte": PairPreset("sentence1", "sentence2", "label", ("entailment", "not_entailment")),
    "qnli": PairPreset("question", "sentence", "label", ("entailment", "not_entailment")),
    "mnli": PairPreset(
        "sentence1", "sentence2", "gold_label", ("contradiction", "entailment", "neutral")
    ),
    "qqp": PairPreset(
        "question1", "question2", "is_duplicate", ("not_duplicate", "duplicate"), "f1"
    ),
    # CoLA's GLUE TSVs have no header row: add `source\tlabel\toriginal\tsentence` first.
    "cola": PairPreset(
        "sentence", None, "label", ("unacceptable", "acceptable"), "matthews_correlation"
    ),
    "stsb": PairPreset("sentence1", "sentence2", "score", (), "pearson", regression=True),
}


class PairConfig(RunSettings):
    """Everything `textroute train pair` needs; env vars TEXTROUTE_TRAIN_PAIR_*, CLI flags win.

    `task` picks a GLUE preset (columns, labels, metric); explicit columns override it.
    """

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_TRAIN_PAIR_", env_nested_delimiter="__")

    data: str
    task: str | None = Field(default=None, description=f"GLUE preset: {', '.join(PRESETS)}.")
    eval_data: str | None = Field(
        default=None, description="Held-out data (e.g. GLUE dev), reported only."
    )
    split: str | None = "train"
    eval_split: str | None = "validation"
    text_column: str | None = None
    pair_column: str | None = None
    label_column: str | None = None
    label_names: list[str] | None = None
    metric: str | None = None
    regression: bool | None = None
    name: str = "pair"
    output: Path = Path("models/pair")
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    baseline: bool = True

    def resolved(self) -> PairPreset:
        """The preset with the explicit options applied over it."""
        if self.task is not None and self.task.lower() not in PRESETS:
            raise ConfigError(f"unknown --task {self.task!r}: choose one of {', '.join(PRESETS)}")
        base = PRESETS[self.task.lower()] if self.task else None
        text = self.text_column or (base.text_column if base else None)
        label = self.label_column or (base.label_column if base else None)
        if text is None or label is None:
            raise ConfigError(
                "give --task (a GLUE preset) or both --text-column and --label-column"
            )
        return PairPreset(
            text_column=text,
            pair_column=self.pair_column or (base.pair_column if base else None),
            label_column=label,
            label_names=tuple(self.label_names or (base.label_names if base else ())),
            metric=self.metric or (base.metric if base else "accuracy"),
            regression=self.regression
            if self.regression is not None
            else bool(base and base.regression),
        )


def train_pair(cfg: PairConfig) -> ModelManifest:
    """Train a GLUE-style model: classification through the classifier pipeline (pair fed as
    [CLS] A [SEP] B [SEP]), or regression with a one-output head for scores like STS-B."""
    preset = cfg.resolved()
    if not preset.regression:
        # The classifier pipeline already feeds a pair as [CLS] A [SEP] B [SEP]; reuse it.
        classify = ClassifyConfig.model_validate(
            {
                **cfg.model_dump(
                    include={
                        "data",
                        "split",
                        "eval_data",
                        "eval_split",
                        "base_model",
                        "name",
                        "output",
                        "work_dir",
                        "validation_fraction",
                        "limit",
                        "eval_limit",
                        "baseline",
                        "resume",
                        "hp",
                    }
                ),
                "text_columns": [preset.text_column],
                "pair_column": preset.pair_column,
                "label_column": preset.label_column,
                "label_names": list(preset.label_names) or None,
                "metric": preset.metric,
            }
        )
        return train_classifier(classify)
    return _train_regression(cfg, preset)


def _train_regression(cfg: PairConfig, preset: PairPreset) -> ModelManifest:
    def load(source: str, split: str | None, limit: int | None) -> ScoredTexts:
        return load_scored_texts(
            source,
            text_column=preset.text_column,
            score_column=preset.label_column,
            pair_column=preset.pair_column,
            split=split,
            limit=limit,
        )

    data = load(cfg.data, cfg.split, cfg.limit)
    indices = list(range(len(data)))
    random.Random(cfg.hp.seed).shuffle(indices)
    cut = max(1, int(len(indices) * cfg.validation_fraction))
    val = data.subset(sorted(indices[:cut]), f"validation({cfg.validation_fraction:g} of train)")
    train = data.subset(sorted(indices[cut:]))
    test = load(cfg.eval_data, cfg.eval_split, cfg.eval_limit) if cfg.eval_data else None
    task = RegressionTask(pair=preset.pair_column is not None)
    task.metric_for_best = preset.metric
    return train_evaluate_save(
        task,
        train,
        val,
        test,
        cfg,
        text_columns=[preset.text_column, *([preset.pair_column] if preset.pair_column else [])],
    )
