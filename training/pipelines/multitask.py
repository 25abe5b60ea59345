"""Train one encoder for classes and entities: labelled texts + tagged sentences -> artifact."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from schemas import ModelManifest
from training._pipeline import RunSettings, train_evaluate_save
from training.export.sample import NER_EVAL_KEY
from training.formats.tagged import TaggedSentences, find_conll_splits
from training.pipelines.classification import ClassifyConfig, load_splits
from training.pipelines.token_classification import NerConfig, load_ner_splits
from training.tasks.multitask import ClassifyAndTagTask, TextsAndSentences
from training.tasks.token_classification import DEFAULT_STRIDE


class MultiTaskConfig(RunSettings):
    """Everything `textroute train multitask` needs; env vars TEXTROUTE_TRAIN_MULTITASK_*, CLI
    flags win. `limit`/`eval_limit` apply to the texts and to the sentences alike.

    `textroute export` reads `classify_eval_data` and `ner_eval_data` back from the artifact's
    training config (training.export.sample.CLASSIFY_EVAL_KEY, NER_EVAL_KEY) for its gates.
    """

    model_config = SettingsConfigDict(
        env_prefix="TEXTROUTE_TRAIN_MULTITASK_", env_nested_delimiter="__"
    )

    classify_data: str = Field(description="Labelled texts: CSV/TSV/JSONL/parquet or Hub dataset.")
    classify_eval_data: str | None = Field(
        default=None, description="Held-out labelled texts, reported only."
    )
    split: str | None = "train"
    eval_split: str | None = "test"
    text_columns: list[str] = Field(default_factory=lambda: ["text"])
    label_column: str = "label"
    label_names: list[str] | None = None
    ner_data: str = Field(
        description="CoNLL directory (train/valid/test files), CoNLL or JSONL file, or Hub dataset."
    )
    ner_validation_data: str | None = Field(
        default=None, description="Default: the directory's valid file, else carved from train."
    )
    ner_eval_data: str | None = Field(
        default=None,
        description="Held-out tagged sentences, reported only; default: the directory's test file.",
    )
    tokens_column: str = "tokens"
    tags_column: str = "tags"
    tag_names: list[str] | None = None
    on_error: Literal["raise", "skip"] = "raise"
    label_all_subwords: bool = False
    stride: int = Field(default=DEFAULT_STRIDE, ge=0)
    context_tokens: int = Field(default=0, ge=0)
    name: str = "multitask"
    output: Path = Path("models/multitask")
    validation_fraction: float = Field(default=0.1, gt=0, lt=0.5)
    lexical: bool = Field(
        True,
        description="Fit a TF-IDF + logistic-regression expert on the labelled texts and fuse "
        "it with the classes when that gains on validation.",
    )

    def with_found_ner_test(self) -> MultiTaskConfig:
        """This config with `ner_eval_data` set to the NER directory's test file when unset, so
        the artifact records which file its test figures (and export gates) come from."""
        source = Path(self.ner_data)
        if self.ner_eval_data is not None or not source.is_dir():
            return self
        found = find_conll_splits(source)
        if "test" not in found:
            return self
        return self.model_copy(update={NER_EVAL_KEY: str(found["test"])})


def _common(cfg: MultiTaskConfig) -> dict[str, Any]:
    """The settings the texts and the sentences are loaded with alike."""
    return {
        "limit": cfg.limit,
        "eval_limit": cfg.eval_limit,
        "validation_fraction": cfg.validation_fraction,
        "hp": cfg.hp,
    }


def _texts_config(cfg: MultiTaskConfig) -> ClassifyConfig:
    """How `train classify` would load this model's labelled texts (and their carve)."""
    return ClassifyConfig.model_validate(
        {
            **_common(cfg),
            "data": cfg.classify_data,
            "split": cfg.split,
            "eval_data": cfg.classify_eval_data,
            "eval_split": cfg.eval_split,
            "text_columns": cfg.text_columns,
            "label_column": cfg.label_column,
            "label_names": cfg.label_names,
        }
    )


def load_multitask_splits(
    cfg: MultiTaskConfig,
) -> tuple[TextsAndSentences, TextsAndSentences, TextsAndSentences | None]:
    """Train, validation and the optional test split of both tasks, loaded as `train classify`
    and `train ner` load them (validation: carved from the texts, the NER valid file)."""
    texts = load_splits(_texts_config(cfg))
    sentences = load_ner_splits(
        NerConfig.model_validate(
            {
                **_common(cfg),
                "data": cfg.ner_data,
                "validation_data": cfg.ner_validation_data,
                "eval_data": cfg.ner_eval_data,
                "tokens_column": cfg.tokens_column,
                "tags_column": cfg.tags_column,
                "label_names": cfg.tag_names,
                "on_error": cfg.on_error,
            }
        )
    )
    train, val = (TextsAndSentences(texts[i], sentences[i]) for i in (0, 1))
    test = None
    if texts[2] is not None or sentences[2] is not None:
        test = TextsAndSentences(texts[2], sentences[2])
    return train, val, test


def _data_issues(splits: dict[str, TaggedSentences | None]) -> dict[str, Any]:
    return {
        name: {
            "count": len(split.skipped),
            "by_reason": split.skip_summary(),
            "repaired_iob1_tags": split.repaired_tags,
        }
        for name, split in splits.items()
        if split is not None and (split.skipped or split.repaired_tags)
    }


def train_multitask(cfg: MultiTaskConfig) -> ModelManifest:
    """Fine-tune one encoder with a head over NER tags then classes, choose the best epoch on
    the mean of validation class accuracy and entity F1, report both tasks on validation and
    test (eval/classification, eval/ner), and write the artifact (task classify-and-tag)."""
    cfg = cfg.with_found_ner_test()
    train, val, test = load_multitask_splits(cfg)
    assert train.texts is not None and train.sentences is not None
    task = ClassifyAndTagTask(
        train.sentences.label_names,
        train.texts.label_names,
        label_all_subwords=cfg.label_all_subwords,
        stride=cfg.stride,
        context_tokens=cfg.context_tokens,
        label_smoothing=cfg.hp.label_smoothing,
    )
    issues = _data_issues(
        {
            "train": train.sentences,
            "validation": val.sentences,
            "test": test.sentences if test is not None else None,
        }
    )
    manifest = train_evaluate_save(
        task,
        train,
        val,
        test,
        cfg,
        text_columns=cfg.text_columns,
        extra_metrics={"data_issues": issues} if issues else None,
        class_labels=task.class_names,
    )
    if cfg.lexical and val.texts is not None:
        from training.lexical import add_lexical

        manifest = add_lexical(cfg.output, train.texts, val.texts, seed=cfg.hp.seed)
    return manifest


def lexical_for_multitask(root: Path, cfg: MultiTaskConfig) -> ModelManifest:
    """Fit and attach the lexical expert of the classify-and-tag artifact at `root` that `cfg`
    (its training config) trained: the same labelled texts and validation carve."""
    from training.lexical import add_lexical

    # The texts only: the tagged sentences play no part in the expert.
    train, val, _ = load_splits(_texts_config(cfg.model_copy(update={"classify_eval_data": None})))
    return add_lexical(root, train, val, seed=cfg.hp.seed)
