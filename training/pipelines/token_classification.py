"""Train an NER model end to end: tagged data, fine-tuning, seqeval evaluation, artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import structlog
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas import ModelManifest
from training._pipeline import RunSettings, train_evaluate_save
from training.formats.tagged import TaggedSentences, find_conll_splits, load_tagged
from training.tasks.token_classification import DEFAULT_STRIDE, TokenClassificationTask

log = structlog.get_logger(__name__)


class NerConfig(RunSettings):
    """Everything `textroute train ner` needs; env vars TEXTROUTE_TRAIN_NER_*, CLI flags win."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_TRAIN_NER_", env_nested_delimiter="__")

    data: str = Field(
        description="CoNLL directory (train/valid/test files), CoNLL or JSONL file, or Hub dataset."
    )
    split: str | None = None
    validation_data: str | None = Field(
        default=None,
        description="Validation data; default: the directory's valid file, else carved.",
    )
    eval_data: str | None = Field(
        default=None,
        description="Held-out test data, reported only; default: the directory's test file.",
    )
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    label_names: list[str] | None = None
    on_error: Literal["raise", "skip"] = "raise"
    label_all_subwords: bool = False
    stride: int = Field(default=DEFAULT_STRIDE, ge=0)
    context_tokens: int = Field(
        default=0,
        ge=0,
        description="Subwords of document context on each side of a sentence (CoNLL documents).",
    )
    name: str = "ner"
    output: Path = Path("models/ner")
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.5)


def load_ner_splits(
    cfg: NerConfig,
) -> tuple[TaggedSentences, TaggedSentences, TaggedSentences | None]:
    """Train, validation (the given file, the directory's valid file, or carved from train)
    and the optional test split, all sharing the training label set."""
    source = Path(cfg.data)
    found = find_conll_splits(source) if source.is_dir() else {}
    common = {
        "tokens_column": cfg.tokens_column,
        "tags_column": cfg.tags_column,
        "on_error": cfg.on_error,
    }
    train = load_tagged(
        str(found.get("train", cfg.data)),
        split=cfg.split,
        label_names=cfg.label_names,
        limit=cfg.limit,
        **common,
    )
    labels = train.label_names
    validation_source = cfg.validation_data or (
        str(found["validation"]) if "validation" in found else None
    )
    if validation_source:
        val = load_tagged(
            validation_source,
            split="validation",
            label_names=labels,
            limit=cfg.eval_limit,
            **common,
        )
    else:
        train, val = _carve(train, cfg.validation_fraction, cfg.hp.seed)
    test_source = cfg.eval_data or (str(found["test"]) if "test" in found else None)
    test = None
    if test_source:
        test = load_tagged(
            test_source, split="test", label_names=labels, limit=cfg.eval_limit, **common
        )
    return train, val, test


def _carve(
    data: TaggedSentences, fraction: float, seed: int
) -> tuple[TaggedSentences, TaggedSentences]:
    import random

    indices = list(range(len(data)))
    random.Random(seed).shuffle(indices)
    cut = max(1, int(len(indices) * fraction))
    val = data.subset(sorted(indices[:cut]))
    train = data.subset(sorted(indices[cut:]))
    split = f"validation({fraction:g} of train)"
    return train, TaggedSentences(
        tokens=val.tokens,
        tags=val.tags,
        label_names=val.label_names,
        ref=val.ref.model_copy(update={"split": split}),
        documents=val.documents,
    )


def train_ner(cfg: NerConfig) -> ModelManifest:
    """Fine-tune a token classifier, choose the best epoch on validation, report seqeval
    scores on validation and test, and write the artifact (labels: IOB2 tags)."""
    train, val, test = load_ner_splits(cfg)
    task = TokenClassificationTask(
        train.label_names,
        label_all_subwords=cfg.label_all_subwords,
        stride=cfg.stride,
        context_tokens=cfg.context_tokens,
    )
    skipped = {
        name: {
            "count": len(split.skipped),
            "by_reason": split.skip_summary(),
            "repaired_iob1_tags": split.repaired_tags,
        }
        for name, split in (("train", train), ("validation", val), ("test", test))
        if split is not None and (split.skipped or split.repaired_tags)
    }
    return train_evaluate_save(
        task,
        train,
        val,
        test,
        cfg,
        text_columns=[],
        extra_metrics={"data_issues": skipped} if skipped else None,
    )
