"""Distil a fine-tuned classifier (or classify-and-tag model) into a student with fewer encoder
layers: a fast profile."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import MANIFEST_FILE, FileRole, Lineage, ModelManifest, TaskKind
from schemas.artifact import read_manifest, sha256_file, with_files, write_manifest
from training._pipeline import train_evaluate_save
from training.artifact import TRAINING_CONFIG_FILE
from training.data import LabelledTexts
from training.errors import ConfigError, UnknownLabel
from training.pipelines.classification import (
    ClassifyConfig,
    ClassWeight,
    Parent,
    check_plan,
    class_weights,
    load_splits,
    read_parent,
)
from training.tasks.classification import ClassificationTask
from training.tasks.distillation import DistillationTask, Softened, kept_layers
from training.tasks.multitask import ClassifyAndTagTask, TextsAndSentences
from training.trainer import Hyperparameters

T = TypeVar("T")

#: The teachers a student can be distilled from.
_CLASSIFIERS = (TaskKind.CLASSIFICATION, TaskKind.PAIR_CLASSIFICATION)
DISTILLABLE = (*_CLASSIFIERS, TaskKind.CLASSIFY_AND_TAG)


class DistillConfig(BaseSettings):
    """Everything `textroute train distill` needs; env vars TEXTROUTE_TRAIN_DISTILL_*, CLI flags
    win. Unset data options are the teacher's (its training config, else its manifest)."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTROUTE_TRAIN_DISTILL_", env_nested_delimiter="__"
    )

    teacher: Path = Field(description="The classification or classify-and-tag artifact.")
    data: str = Field(description="Training data: local CSV/TSV/JSONL/parquet or Hub dataset.")
    layers: int = Field(3, description="Encoder layers the student keeps (checked: 1..teacher-1).")
    temperature: float = Field(2.0, gt=0, description="Softens both distributions in the KL.")
    alpha: float = Field(0.5, ge=0, description="Weight of the gold-label cross-entropy.")
    split: str | None = "train"
    eval_data: str | None = Field(None, description="Held-out test data, reported only.")
    eval_split: str | None = "test"
    text_columns: list[str] | None = None
    eval_text_columns: list[str] | None = None
    pair_column: str | None = None
    label_column: str | None = None
    ner_data: str | None = Field(
        None, description="Classify-and-tag: the tagged sentences; default: the teacher's."
    )
    name: str | None = Field(None, description="Default: the teacher's name + '-l' + layers.")
    output: Path | None = Field(None, description="Default: models/NAME.")
    work_dir: Path | None = None
    validation_fraction: float = Field(0.1, gt=0, lt=0.5)
    limit: int | None = Field(None, ge=2)
    eval_limit: int | None = Field(None, ge=1)
    metric: str | None = Field(None, description="Epoch-selection figure; default: teacher's.")
    class_weight: ClassWeight | None = Field(None, description="Default: the teacher's.")
    lexical: bool = True
    resume: bool = False
    hp: Hyperparameters = Field(default_factory=Hyperparameters)
    kept_layers: list[int] | None = Field(None, description="Filled: the teacher layers kept.")

    @property
    def base_model(self) -> str:
        """Where the student's weights and tokenizer load from: the teacher artifact."""
        return str(self.teacher)


@dataclass(frozen=True)
class Teacher:
    """A fine-tuned classifier (or classify-and-tag) artifact a student learns from, its files
    verified."""

    artifact: Parent
    #: Its encoder layers.
    layers: int

    @property
    def root(self) -> Path:
        return self.artifact.root

    @property
    def manifest(self) -> ModelManifest:
        return self.artifact.manifest


def read_teacher(root: Path) -> Teacher:
    """The teacher artifact at `root`, checksums verified; a task not DISTILLABLE is refused."""
    found = read_manifest(root, verify=False)  # read_parent verifies every file
    if found.task not in DISTILLABLE:
        supported = ", ".join(t.value for t in DISTILLABLE)
        raise ConfigError(
            f"teacher {root} is a {found.task.value} model; train distill supports "
            f"{supported} teachers"
        )
    if found.task in _CLASSIFIERS:
        artifact = read_parent(root)
    else:  # read_parent takes sequence classifiers only: verify and read the same parts here
        saved = root / TRAINING_CONFIG_FILE
        training = json.loads(saved.read_text(encoding="utf-8")) if saved.is_file() else {}
        artifact = Parent(
            root,
            read_manifest(root),
            sha256_file(root / MANIFEST_FILE),
            training if isinstance(training, dict) else {},
        )
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    return Teacher(artifact, int(config.get("num_hidden_layers") or 0))


def resolve(cfg: DistillConfig, teacher: Teacher) -> DistillConfig:
    """`cfg` with what it leaves unset taken from the teacher: text, pair and label columns,
    name, output, epoch metric, class weights; and the kept layers. The teacher's max_length
    is the student's (what the teacher saw is what the student is taught on)."""
    m, saved = teacher.manifest, teacher.artifact.config
    pair = m.task is TaskKind.PAIR_CLASSIFICATION
    columns = list(m.text_columns)
    text_columns = (
        cfg.text_columns or saved.get("text_columns") or (columns[:-1] if pair else columns)
    )
    pair_column = cfg.pair_column or saved.get("pair_column") or (columns[-1] if pair else None)
    if (pair_column is not None) != pair:
        raise ConfigError(
            f"teacher {teacher.root} is a {m.task.value} model: "
            + ("give its --pair-column" if pair else "it reads one text, not a --pair-column")
        )
    given_length = cfg.hp.max_length if "max_length" in cfg.hp.model_fields_set else None
    if given_length is not None and given_length != m.max_length:
        raise ConfigError(
            f"--max-length {given_length}: the student reads what its teacher read, "
            f"{m.max_length} tokens"
        )
    name = cfg.name or f"{m.name}-l{cfg.layers}"
    return cfg.model_copy(
        update={
            "text_columns": text_columns or ["text"],
            "pair_column": pair_column,
            "label_column": cfg.label_column or saved.get("label_column") or "label",
            "name": name,
            "output": cfg.output or Path("models") / name,
            "metric": cfg.metric or saved.get("metric") or "f1_macro",
            "class_weight": cfg.class_weight or saved.get("class_weight") or "none",
            "hp": cfg.hp.model_copy(update={"max_length": m.max_length}),
            "kept_layers": kept_layers(teacher.layers, cfg.layers),
        }
    )


def rows_config(cfg: DistillConfig, teacher: Teacher) -> ClassifyConfig:
    """How `train classify` would load the rows (carve and test included) of a resolved `cfg`:
    the teacher's labels in the teacher's order, so a label the teacher lacks is an error."""
    return ClassifyConfig.model_validate(
        {
            "data": cfg.data,
            "split": cfg.split,
            "eval_data": cfg.eval_data,
            "eval_split": cfg.eval_split,
            "text_columns": cfg.text_columns,
            "eval_text_columns": cfg.eval_text_columns,
            "pair_column": cfg.pair_column,
            "label_column": cfg.label_column,
            "label_names": teacher.manifest.labels,
            "validation_fraction": cfg.validation_fraction,
            "limit": cfg.limit,
            "eval_limit": cfg.eval_limit,
            "metric": cfg.metric,
            "pooling": teacher.manifest.pooling,
            "class_weight": cfg.class_weight,
            "lexical": cfg.lexical,
            "hp": cfg.hp,
        }
    )


def with_teacher_labels(teacher: Teacher, load: Callable[[], T]) -> T:
    """The splits `load` reads with the teacher's labels, an unknown label said as such."""
    try:
        return load()
    except UnknownLabel as exc:
        found = str(exc).split("; ")[0]
        raise UnknownLabel(
            f"{found}: a student keeps the classes of its teacher {teacher.root}"
        ) from exc


def teacher_logits(teacher: Teacher, rows: LabelledTexts, *, batch_size: int) -> Any:
    """The teacher's logits over `rows`, computed once with no gradient (a progress bar)."""
    from training.artifact import load_artifact
    from training.evaluation import predict_proba

    model, tokenizer, manifest = load_artifact(teacher.root, verify=False)  # read verified it
    probs = predict_proba(
        model,
        tokenizer,
        rows.texts,
        pairs=rows.pairs,
        max_length=manifest.max_length,
        batch_size=batch_size,
        progress="teacher logits",
    )
    return log_probabilities(probs)


def log_probabilities(probs: Any) -> npt.NDArray[np.float32]:
    """Log-probabilities: the logits up to a constant per row, which every softmax (and so the
    KL) ignores. A probability that underflowed to 0 is floored so its log stays finite."""
    floor = np.finfo(np.float32).tiny
    return np.log(np.maximum(np.asarray(probs, dtype=np.float64), floor)).astype(np.float32)


def distill(cfg: DistillConfig) -> ModelManifest:
    """Distil the teacher into a `cfg.layers`-layer student on DATA (validation carved as
    `train classify` carves it, the epoch chosen on it), evaluate it on validation and test,
    and write its artifact: the teacher's labels, tokenizer, pooling and max_length; the
    manifest's lineage names the teacher and the layers kept."""
    teacher = read_teacher(cfg.teacher)
    cfg = resolve(cfg, teacher)
    assert cfg.kept_layers is not None and cfg.output is not None and cfg.metric is not None
    if teacher.manifest.task is TaskKind.CLASSIFY_AND_TAG:
        return distill_classify_and_tag(cfg, teacher)
    rows = rows_config(cfg, teacher)
    train, val, test = with_teacher_labels(teacher, lambda: load_splits(rows))
    check_plan(rows, train)
    inner = ClassificationTask(
        train.label_names,
        pair=rows.pair_column is not None,
        metric=cfg.metric,
        pooling=teacher.manifest.pooling,
        class_weights=class_weights(train, rows.class_weight),
        label_smoothing=cfg.hp.label_smoothing,
    )
    task = DistillationTask(inner, cfg.kept_layers, temperature=cfg.temperature, alpha=cfg.alpha)
    logits = teacher_logits(teacher, train, batch_size=cfg.hp.eval_batch_size)
    manifest = train_evaluate_save(
        task,
        Softened(train, logits),
        val,
        test,
        cfg,  # type: ignore[arg-type]  # name and output are resolved above
        text_columns=[*rows.text_columns, *([rows.pair_column] if rows.pair_column else [])],
        pooling=teacher.manifest.pooling,
    )
    manifest = record_teacher(cfg.output, manifest, teacher, train, cfg.kept_layers)
    if cfg.lexical and rows.pair_column is None:
        from training.lexical import add_lexical

        manifest = add_lexical(cfg.output, train, val, test, seed=cfg.hp.seed)
    return manifest


def distill_classify_and_tag(cfg: DistillConfig, teacher: Teacher) -> ModelManifest:
    """`distill` of a classify-and-tag teacher: its texts (DATA) and tagged sentences
    (--ner-data, default the teacher's) loaded as `train multitask` loads them, the teacher's
    logits taken per token over the encoded training examples."""
    from training.export.sample import CLASSIFY_EVAL_KEY, NER_EVAL_KEY
    from training.pipelines.multitask import MultiTaskConfig, load_multitask_splits

    assert cfg.kept_layers is not None and cfg.output is not None
    m, saved = teacher.manifest, teacher.artifact.config
    ner_data = cfg.ner_data or saved.get("ner_data")
    if not ner_data:
        raise ConfigError(f"teacher {teacher.root} records no NER data: give --ner-data")
    same = ner_data == saved.get("ner_data")
    kept = ("tokens_column", "tags_column", "on_error", "label_all_subwords", "stride")
    mt = MultiTaskConfig.model_validate(
        {
            **{key: saved[key] for key in (*kept, "context_tokens") if key in saved},
            # The teacher's NER validation and test files go with its NER data only.
            "ner_validation_data": saved.get("ner_validation_data") if same else None,
            "ner_eval_data": saved.get(NER_EVAL_KEY) if same else None,
            "ner_data": ner_data,
            "classify_data": cfg.data,
            "classify_eval_data": cfg.eval_data,
            "split": cfg.split,
            "eval_split": cfg.eval_split,
            "text_columns": cfg.text_columns,
            "label_column": cfg.label_column,
            "label_names": m.class_labels,
            "tag_names": m.tag_labels,
            "limit": cfg.limit,
            "eval_limit": cfg.eval_limit,
            "validation_fraction": cfg.validation_fraction,
            "hp": cfg.hp,
            "lexical": cfg.lexical,
        }
    ).with_found_ner_test()
    train, val, test = with_teacher_labels(teacher, lambda: load_multitask_splits(mt))
    assert train.texts is not None and train.sentences is not None
    if (train.sentences.label_names, train.texts.label_names) != (m.tag_labels, m.class_labels):
        raise ConfigError(
            f"the data's tags and classes {train.sentences.label_names} "
            f"{train.texts.label_names} are not the teacher's {m.tag_labels} {m.class_labels}"
        )
    inner = ClassifyAndTagTask(
        m.tag_labels,
        m.class_labels or [],
        label_all_subwords=mt.label_all_subwords,
        stride=mt.stride,
        context_tokens=mt.context_tokens,
        label_smoothing=cfg.hp.label_smoothing,
    )
    task = DistillationTask(inner, cfg.kept_layers, temperature=cfg.temperature, alpha=cfg.alpha)
    logits = teacher_token_logits(teacher, inner, train, batch_size=cfg.hp.eval_batch_size)
    manifest = train_evaluate_save(
        task,
        Softened(train, logits),
        val,
        test,
        cfg,  # type: ignore[arg-type]  # name and output are resolved
        text_columns=mt.text_columns,
        class_labels=inner.class_names,
    )
    # `textroute export` gates each head on the held-out data these keys name.
    data = {
        "ner_data": mt.ner_data,
        CLASSIFY_EVAL_KEY: mt.classify_eval_data,
        NER_EVAL_KEY: mt.ner_eval_data,
    }
    manifest = record_teacher(
        cfg.output, manifest, teacher, train, cfg.kept_layers, training_extra=data
    )
    if cfg.lexical and val.texts is not None:
        from training.lexical import add_lexical

        manifest = add_lexical(cfg.output, train.texts, val.texts, seed=cfg.hp.seed)
    return manifest


def teacher_token_logits(
    teacher: Teacher, inner: ClassifyAndTagTask, rows: TextsAndSentences, *, batch_size: int
) -> list[npt.NDArray[np.float32]]:
    """The teacher's per-token logits over each example `inner` encodes from `rows` (a text,
    a window of a sentence), in encoding order, computed once with no gradient."""
    import torch
    from transformers import DataCollatorWithPadding

    from training._progress import track
    from training.artifact import load_artifact

    loaded, tokenizer, manifest = load_artifact(teacher.root, verify=False)  # read verified it
    model: Any = loaded.eval()  # type: ignore[no-untyped-call]
    encoded = inner.encode(tokenizer, rows, manifest.max_length)
    inputs = [c for c in encoded.column_names if c != "labels"]
    collate = DataCollatorWithPadding(tokenizer)
    left = getattr(tokenizer, "padding_side", "right") == "left"
    out: list[npt.NDArray[np.float32]] = []
    with torch.inference_mode():
        for start in track(range(0, len(encoded), batch_size), description="teacher logits"):
            part = encoded.select(range(start, min(start + batch_size, len(encoded))))
            features = [{c: part[i][c] for c in inputs} for i in range(len(part))]
            logits = model(**collate(features)).logits.float().numpy()
            for i, feature in enumerate(features):
                n = len(feature["input_ids"])
                out.append(logits[i, logits.shape[1] - n :] if left else logits[i, :n])
    return out


def record_teacher(
    root: Path,
    manifest: ModelManifest,
    teacher: Teacher,
    train: LabelledTexts | TextsAndSentences,
    keep: list[int],
    *,
    training_extra: dict[str, Any] | None = None,
) -> ModelManifest:
    """Rewrite the student's manifest at `root`: the teacher's base model (not the directory
    the weights were loaded from), and a lineage naming the teacher and the layers kept;
    `training_extra` is added to its training config."""
    lineage = Lineage(
        parent_name=teacher.manifest.name,
        parent_version=teacher.manifest.version,
        parent_manifest_sha256=teacher.artifact.manifest_sha256,
        data=[train.ref],
        new_rows=len(train),
        replay_rows=0,
        kind="distilled",
        kept_layers=keep,
    )
    update: dict[str, Any] = {"base_model": teacher.manifest.base_model, "lineage": lineage}
    config = root / TRAINING_CONFIG_FILE
    if training_extra:
        training = {**manifest.training, **training_extra}
        config.write_text(json.dumps(training, indent=2, default=str) + "\n", encoding="utf-8")
        update["training"] = training
    updated = manifest.model_copy(update=update)
    if training_extra:
        updated = with_files(updated, root, {config: FileRole.TRAINING_CONFIG})
    write_manifest(updated, root)
    return updated


__all__ = [
    "DISTILLABLE",
    "DistillConfig",
    "Teacher",
    "distill",
    "read_teacher",
    "record_teacher",
    "resolve",
]
