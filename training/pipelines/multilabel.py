"""Train a multi-label classifier end to end: label sets, fine-tuning, per-label thresholds, the
TF-IDF + one-vs-rest baseline (and its fusion as a lexical expert), evaluation, artifact."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from inference import LexicalExpert, fuse_log_odds
from schemas import FileRole, LexicalFusion, ModelManifest, Pooling
from training._pipeline import EVAL_DIR, RunSettings, report_files
from training.artifact import new_version, save_artifact
from training.errors import ConfigError
from training.formats.labelsets import LabelSets, carve_validation, load_label_sets
from training.multilabel_metrics import (
    MIN_POSITIVES,
    Thresholds,
    multilabel_metrics,
    report_multilabel,
    sigmoid,
    tune_thresholds,
)
from training.tasks.multilabel import MultiLabelTask
from training.trainer import fine_tune

log = structlog.get_logger(__name__)

#: Inverse L2 strengths of the baseline's logistic regressions, chosen on validation.
C_GRID = (3.0, 10.0, 30.0, 100.0)
#: Weights of the baseline's log-odds fused with the encoder's, chosen on validation; 0 is the
#: encoder alone.
WEIGHT_GRID = (0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5)
#: The log-odds of a label the training rows never show (its regression cannot be fitted).
_ABSENT_LOG_ODDS = -10.0
LEXICAL_FILE = "lexical.npz"


class MultiLabelConfig(RunSettings):
    """Everything `textroute train multilabel` needs; env vars TEXTROUTE_TRAIN_MULTILABEL_*."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTROUTE_TRAIN_MULTILABEL_", env_nested_delimiter="__"
    )

    data: str = Field(description="Training data: local CSV/TSV/JSONL/parquet or Hub dataset.")
    split: str | None = "train"
    eval_data: str | None = Field(None, description="Held-out test data, reported only.")
    eval_split: str | None = "test"
    text_columns: list[str] = Field(default_factory=lambda: ["text"])
    eval_text_columns: list[str] | None = None
    label_column: str = "labels"
    label_separator: str | None = Field(
        None, description="Cut a string label cell into names at this separator, e.g. '|'."
    )
    label_columns: list[str] | None = Field(
        None, description="0/1 columns, one per label (named like the column)."
    )
    label_names: list[str] | None = None
    name: str = "multilabel"
    output: Path = Path("models/multilabel")
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    min_threshold_positives: int = Field(
        MIN_POSITIVES, ge=1, description="Validation positives a label needs for its own threshold."
    )
    pooling: Pooling = "mean"
    baseline: bool = True
    lexical: bool = Field(
        True,
        description="Fuse the baseline's per-label log-odds with the encoder's when that gains "
        "on validation.",
    )

    @model_validator(mode="after")
    def _one_label_format(self) -> MultiLabelConfig:
        if self.label_columns and self.label_separator:
            raise ConfigError("--label-columns and --label-separator exclude each other")
        return self


def load_splits(cfg: MultiLabelConfig) -> tuple[LabelSets, LabelSets, LabelSets | None]:
    """Train and validation (carved from train, seeded), and the optional test split."""
    formats: dict[str, Any] = {
        "label_column": cfg.label_column,
        "label_separator": cfg.label_separator,
        "label_columns": cfg.label_columns,
    }
    data = load_label_sets(
        cfg.data,
        text_columns=cfg.text_columns,
        label_names=cfg.label_names,
        split=cfg.split,
        limit=cfg.limit,
        **formats,
    )
    if len(data.label_names) < 2:
        raise ConfigError(f"{cfg.data}: one label only ({data.label_names}); nothing to choose")
    train, val = carve_validation(data, fraction=cfg.validation_fraction, seed=cfg.hp.seed)
    test = None
    if cfg.eval_data:
        test = load_label_sets(
            cfg.eval_data,
            text_columns=cfg.eval_text_columns or cfg.text_columns,
            label_names=data.label_names,
            split=cfg.eval_split,
            limit=cfg.eval_limit,
            **formats,
        )
    return train, val, test


@dataclass
class OneVsRest:
    """TF-IDF word 1-2 grams + one logistic regression per label, kept as a LexicalExpert (its
    scores are the labels' log-odds), with the C chosen on validation."""

    expert: LexicalExpert
    c: float
    fit_seconds: float

    def probabilities(self, texts: list[str]) -> np.ndarray:
        return sigmoid(self.expert.scores(texts))


def _fit_one_vs_rest(features: Any, gold: np.ndarray, c: float) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    coef = np.zeros((gold.shape[1], features.shape[1]))
    intercept = np.full(gold.shape[1], _ABSENT_LOG_ODDS)
    for j in range(gold.shape[1]):
        if 0 < gold[:, j].sum() < gold.shape[0]:
            model = LogisticRegression(C=c, solver="liblinear").fit(features, gold[:, j])
            coef[j], intercept[j] = model.coef_[0], model.intercept_[0]
    return coef, intercept


def fit_one_vs_rest(train: LabelSets, val: LabelSets, *, min_positives: int) -> OneVsRest:
    """Fit the baseline on `train`, C by validation micro-F1 (each C's thresholds tuned on
    validation as the encoder's are)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=True, min_df=2)
    features = vectorizer.fit_transform(train.texts)
    gold, val_gold = train.indicator(), val.indicator()
    best: tuple[float, OneVsRest] | None = None
    for c in C_GRID:
        coef, intercept = _fit_one_vs_rest(features, gold, c)
        candidate = OneVsRest(LexicalExpert.from_tfidf(vectorizer, coef, intercept), c, 0.0)
        probs = candidate.probabilities(val.texts)
        score = _micro_f1_tuned(probs, val_gold, min_positives)
        log.info("multilabel.baseline_c", c=c, validation_f1_micro=round(score, 4))
        if best is None or score > best[0]:
            best = (score, candidate)
    assert best is not None
    best[1].fit_seconds = time.perf_counter() - start
    return best[1]


def _micro_f1_tuned(probs: np.ndarray, gold: np.ndarray, min_positives: int) -> float:
    from training.multilabel_metrics import decide

    chosen = tune_thresholds(probs, gold, min_positives=min_positives)
    return float(
        multilabel_metrics(gold, decide(probs, chosen.values), [""] * gold.shape[1])["f1_micro"]
    )


def choose_weight(
    val_probs: np.ndarray, val_scores: np.ndarray, gold: np.ndarray, min_positives: int
) -> tuple[float, dict[float, float]]:
    """The fusion weight with the best validation micro-F1 (thresholds tuned per weight), ties
    to the smaller weight: 0 keeps the encoder alone."""
    by_weight = {
        w: _micro_f1_tuned(fuse_log_odds(val_probs, val_scores, w), gold, min_positives)
        for w in WEIGHT_GRID
    }
    return max(WEIGHT_GRID, key=lambda w: (by_weight[w], -w)), by_weight


def _baseline_metrics(
    baseline: OneVsRest, val: LabelSets, target: LabelSets, min_positives: int
) -> dict[str, Any]:
    chosen = tune_thresholds(
        baseline.probabilities(val.texts), val.indicator(), min_positives=min_positives
    )
    start = time.perf_counter()
    probs = baseline.probabilities(target.texts)
    seconds = time.perf_counter() - start
    metrics = report_multilabel(
        target.texts, target.indicator(), probs, chosen.values, target.label_names, None
    )
    metrics.update(
        {
            "model": "tfidf-1-2gram+one-vs-rest-logistic-regression",
            "c": baseline.c,
            "thresholds": chosen.report,
            "fit_seconds": baseline.fit_seconds,
            "latency_ms_per_text": 1000.0 * seconds / max(1, len(target)),
            "evaluated_on": target.ref.split or target.ref.source,
        }
    )
    return metrics


def train_multilabel(cfg: MultiLabelConfig) -> ModelManifest:
    """Fine-tune (best epoch on validation micro-F1 at 0.5), fit the baseline, fuse it when
    that gains on validation, tune each label's threshold on validation, report validation and
    test, and write the artifact to `cfg.output`."""
    train, val, test = load_splits(cfg)
    task = MultiLabelTask(train.label_names, pooling=cfg.pooling)
    hp, output, need = cfg.hp, cfg.output, cfg.min_threshold_positives
    result = fine_tune(
        task,
        train,
        val,
        base_model=cfg.base_model,
        work_dir=cfg.work_dir or Path("runs") / cfg.name,
        hp=hp,
        resume=cfg.resume,
    )
    model, tokenizer = result.model, result.tokenizer

    def probabilities(data: LabelSets, what: str) -> np.ndarray:
        return task.probabilities(model, tokenizer, data, max_length=hp.max_length, progress=what)

    val_probs = probabilities(val, "validation")
    test_probs = probabilities(test, "test") if test is not None else None
    metrics: dict[str, Any] = {
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.train_samples_per_second,
    }
    baseline = (
        fit_one_vs_rest(train, val, min_positives=need) if cfg.baseline or cfg.lexical else None
    )
    if baseline is not None and cfg.baseline:
        metrics["baseline"] = _baseline_metrics(baseline, val, test or val, need)
    fusion: LexicalFusion | None = None
    weight = 0.0
    if baseline is not None and cfg.lexical:
        val_scores = baseline.expert.scores(val.texts)
        weight, by_weight = choose_weight(val_probs, val_scores, val.indicator(), need)
        metrics["lexical"] = {
            "weight": weight,
            "c": baseline.c,
            "features": len(baseline.expert.vocabulary),
            "validation_f1_micro_by_weight": {str(w): f for w, f in by_weight.items()},
        }
    encoder_thresholds = tune_thresholds(val_probs, val.indicator(), min_positives=need)
    if weight > 0:
        assert baseline is not None
        val_probs = fuse_log_odds(val_probs, val_scores, weight)
        if test is not None and test_probs is not None:
            encoder_only = report_multilabel(
                test.texts,
                test.indicator(),
                test_probs,
                encoder_thresholds.values,
                test.label_names,
                None,
            )
            metrics["test_encoder_only"] = encoder_only
            test_probs = fuse_log_odds(test_probs, baseline.expert.scores(test.texts), weight)
        output.mkdir(parents=True, exist_ok=True)
        baseline.expert.save(output / LEXICAL_FILE)
        fusion = LexicalFusion(
            file=LEXICAL_FILE, weight=weight, c=baseline.c, features=len(baseline.expert.vocabulary)
        )
    thresholds: Thresholds = tune_thresholds(val_probs, val.indicator(), min_positives=need)
    metrics["thresholds"] = thresholds.report
    # Validation chose the thresholds, so its figures flatter the model; test is the measure.
    metrics["validation"] = report_multilabel(
        val.texts, val.indicator(), val_probs, thresholds.values, val.label_names, None
    )
    if test is not None and test_probs is not None:
        metrics["test"] = report_multilabel(
            test.texts,
            test.indicator(),
            test_probs,
            thresholds.values,
            test.label_names,
            output / EVAL_DIR,
        )
    manifest = ModelManifest(
        name=cfg.name,
        version=new_version(),
        task=task.kind,
        labels=task.label_names,
        thresholds=thresholds.values,
        pooling=cfg.pooling,
        base_model=cfg.base_model,
        max_length=hp.max_length,
        text_columns=cfg.text_columns,
        train_data=train.ref,
        eval_data=test.ref if test is not None else val.ref,
        metrics=metrics,
        lexical=fusion,
    )
    extra = report_files(output)
    if fusion is not None:
        extra[output / LEXICAL_FILE] = FileRole.LEXICAL
    manifest = save_artifact(
        output,
        model,
        tokenizer,
        manifest,
        training_config=json.loads(cfg.model_dump_json()),
        extra_files=extra,
    )
    log.info("multilabel.saved", output=str(output), version=manifest.version, weight=weight)
    return manifest


__all__ = ["MultiLabelConfig", "load_splits", "train_multilabel"]
