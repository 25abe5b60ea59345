"""Train an extractive QA model end to end: SQuAD data split by article, fine-tuning, EM/F1."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas import ModelManifest
from training._hp_options import default_hyperparameters
from training._pipeline import RunSettings, train_evaluate_save
from training.errors import ConfigError
from training.formats.squad import QAExamples, load_squad, split_by_article
from training.tasks.question_answering import (
    DEFAULT_MAX_ANSWER_LENGTH,
    DEFAULT_STRIDE,
    QuestionAnsweringTask,
)
from training.trainer import Hyperparameters


def _qa_defaults() -> Hyperparameters:
    # Contexts are long: SQuAD practice reads them in 384-token windows.
    return default_hyperparameters(max_length=384, learning_rate=1e-4, epochs=3.0)


class QAConfig(RunSettings):
    """Everything `textroute train qa` needs; env vars TEXTROUTE_TRAIN_QA_*, CLI flags win."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_TRAIN_QA_", env_nested_delimiter="__")

    data: Path = Field(description="SQuAD-format JSON (v1.1, or v2 with is_impossible).")
    eval_data: Path | None = Field(default=None, description="Held-out SQuAD JSON, reported only.")
    holdout_articles: int = Field(
        default=0,
        ge=0,
        description="Without --eval-data: hold out this many articles of DATA as test.",
    )
    validation_articles: int = Field(
        default=0,
        ge=0,
        description="Articles of the training part used for validation; 0: about 10%.",
    )
    on_error: Literal["raise", "skip"] = "raise"
    stride: int = Field(default=DEFAULT_STRIDE, ge=0)
    max_answer_length: int = Field(default=DEFAULT_MAX_ANSWER_LENGTH, ge=1)
    null_threshold: float | None = Field(
        default=None,
        description="SQuAD v2 no-answer margin; default 0.0 when the data has "
        "unanswerable questions, else answers are always given.",
    )
    name: str = "qa"
    output: Path = Path("models/qa")
    seed: int = 42
    hp: Hyperparameters = Field(default_factory=_qa_defaults)


def load_qa_splits(cfg: QAConfig) -> tuple[QAExamples, QAExamples, QAExamples | None]:
    """Train and validation split by article (no context shared), and the test split: the
    --eval-data file or the held-out articles of DATA."""
    data = load_squad(cfg.data, on_error=cfg.on_error)
    test = None
    if cfg.eval_data is not None:
        test = load_squad(cfg.eval_data, limit=cfg.eval_limit, on_error=cfg.on_error)
    elif cfg.holdout_articles:
        data, test = split_by_article(
            data, held_out=cfg.holdout_articles, seed=cfg.seed, names=("train", "test")
        )
    n_val = cfg.validation_articles or max(1, round(len(data.titles) / 10))
    if len(data.titles) < 2:
        raise ConfigError(
            f"{cfg.data} holds {len(data.titles)} article: validation is carved by article, "
            "so training data needs at least two"
        )
    train, val = split_by_article(
        data,
        held_out=min(n_val, len(data.titles) - 1),
        seed=cfg.seed + 1,
        names=("train", "validation"),
    )
    if cfg.limit is not None:
        train = train.subset(train.examples[: cfg.limit], f"{train.ref.split} (first {cfg.limit})")
    if cfg.eval_limit is not None:
        val = val.subset(val.examples[: cfg.eval_limit], val.ref.split or "validation")
        if test is not None:
            test = test.subset(test.examples[: cfg.eval_limit], test.ref.split or "test")
    return train, val, test


def train_qa(cfg: QAConfig) -> ModelManifest:
    """Fine-tune a span-extraction model, choose the best epoch on validation articles,
    report SQuAD EM/F1 on validation and test, and write the artifact."""
    train, val, test = load_qa_splits(cfg)
    threshold = cfg.null_threshold
    if threshold is None and train.has_impossible:
        threshold = 0.0
    task = QuestionAnsweringTask(
        stride=cfg.stride, max_answer_length=cfg.max_answer_length, null_threshold=threshold
    )
    issues = (
        {"skipped": len(train.skipped), "by_reason": train.skip_summary()}
        if train.skipped
        else None
    )
    return train_evaluate_save(
        task,
        train,
        val,
        test,
        cfg,
        text_columns=["question", "context"],
        extra_metrics={"data_issues": issues} if issues else None,
    )
