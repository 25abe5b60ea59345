"""Train a text classifier end to end: data, fine-tuning, evaluation, baseline, artifact."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas import (
    MANIFEST_FILE,
    DataRef,
    FileRole,
    Lineage,
    ModelManifest,
    Pooling,
    TaskKind,
)
from schemas.artifact import read_manifest, sha256_file, with_files, write_manifest
from training._pipeline import train_evaluate_save
from training.artifact import TRAINING_CONFIG_FILE
from training.baseline import train_baseline
from training.data import (
    LabelledTexts,
    check_trainable,
    load_labelled_texts,
    train_validation_split,
)
from training.errors import ConfigError
from training.models import DEFAULT_BASE_MODEL
from training.tasks.classification import ClassificationTask
from training.trainer import Hyperparameters

ClassWeight = Literal["none", "balanced", "sqrt"]

#: Replay rows per new row when --replay-rows is not given (capped by what the sources hold).
REPLAY_FACTOR = 4
_CLASSIFIER_TASKS = (TaskKind.CLASSIFICATION, TaskKind.PAIR_CLASSIFICATION)


class ReplaySource(BaseModel):
    """Labelled data replayed beside the new rows of a run continued from a parent, read with
    the columns it was trained with (the parent's) or, given as --replay, with the run's."""

    model_config = ConfigDict(frozen=True)

    data: str = Field(description="Local CSV/TSV/JSONL/parquet file or Hub dataset.")
    split: str | None = None
    text_columns: list[str] = Field(default_factory=lambda: ["text"])
    label_column: str = "label"
    pair_column: str | None = None
    label_names: list[str] | None = Field(None, description="Names of integer labels 0..N-1.")
    limit: int | None = Field(None, ge=1, description="Only its first N rows.")


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
    init_from: Path | None = Field(
        None,
        description="A classification artifact to continue from: its encoder and head are the "
        "starting weights, its labels (in order) and base model are kept, and its pooling, "
        "max_length, text columns and name are the defaults.",
    )
    replay: str | None = Field(
        None,
        description="With init_from: data replayed beside the new rows (read with the run's "
        "columns); default: the parent's training data, when local files.",
    )
    replay_rows: int | None = Field(
        None,
        ge=0,
        description="With init_from: replay rows sampled (seeded by hp.seed); default "
        f"{REPLAY_FACTOR} x the new rows, capped by the sources; 0: no replay.",
    )
    parent_labels: list[str] | None = Field(
        None, description="Filled from init_from: its labels; the data's must be among them."
    )
    replay_sources: list[ReplaySource] | None = Field(
        None, description="Filled from replay or init_from: what replay rows are sampled from."
    )

    @model_validator(mode="after")
    def _replay_needs_a_parent(self) -> ClassifyConfig:
        if self.init_from is None and (self.replay is not None or self.replay_rows is not None):
            raise ConfigError("--replay and --replay-rows go with --init-from ARTIFACT")
        return self


@dataclass(frozen=True)
class Parent:
    """A classification artifact a run continues from (`--init-from`), files verified."""

    root: Path
    manifest: ModelManifest
    manifest_sha256: str
    #: Its training_config.json ({} when it has none: not trained by `textroute train`).
    config: dict[str, Any]


def read_parent(root: Path) -> Parent:
    """The artifact at `root`, its checksums verified, refused unless it is a sequence (or
    sentence-pair) classifier whose weights a run can start from."""
    manifest = read_manifest(root)
    if manifest.task not in _CLASSIFIER_TASKS:
        raise ConfigError(
            f"--init-from {root} is a {manifest.task.value} model; train classify continues "
            "from a classification artifact only"
        )
    weights = manifest.file_for(FileRole.WEIGHTS)
    if weights is None or not weights.path.endswith(".safetensors"):
        raise ConfigError(f"--init-from {root} has no safetensors weights to start from")
    if not (root / "config.json").is_file():
        raise ConfigError(f"--init-from {root} has no config.json: not a transformers model")
    config: dict[str, Any] = {}
    saved = root / TRAINING_CONFIG_FILE
    if saved.is_file():
        try:
            loaded = json.loads(saved.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"--init-from {root}: {TRAINING_CONFIG_FILE} is not JSON: {exc}"
            ) from exc
        config = loaded if isinstance(loaded, dict) else {}
    return Parent(root, manifest, sha256_file(root / MANIFEST_FILE), config)


def with_parent(cfg: ClassifyConfig) -> tuple[ClassifyConfig, Parent | None]:
    """`cfg` with what it takes from its `init_from` parent filled in: the parent's labels and
    base model always; its pooling, max_length, text (and pair) columns and name where `cfg`
    does not set them; the replay sources. Unchanged (and no parent) without init_from."""
    from training._progress import warn

    if cfg.init_from is None:
        return cfg, None
    parent = read_parent(cfg.init_from)
    m, saved, given = parent.manifest, parent.config, cfg.model_fields_set
    if "base_model" in given and cfg.base_model != m.base_model:
        raise ConfigError(
            f"--base-model {cfg.base_model} contradicts --init-from {parent.root}: the weights "
            f"come from the artifact, whose base model ({m.base_model}) is the one recorded"
        )
    pair = m.task is TaskKind.PAIR_CLASSIFICATION
    columns = list(m.text_columns)
    update: dict[str, Any] = {"base_model": m.base_model, "parent_labels": list(m.labels)}
    if "pooling" not in given:
        update["pooling"] = m.pooling
    elif cfg.pooling != m.pooling:
        warn(
            f"--pooling {cfg.pooling} but {parent.root} was trained with {m.pooling}: its head "
            "is carried over but read another way; expect to relearn it"
        )
    if "text_columns" not in given:
        own = columns[:-1] if pair else columns
        update["text_columns"] = saved.get("text_columns") or own or ["text"]
    if "pair_column" not in given:
        update["pair_column"] = saved.get("pair_column", columns[-1] if pair and columns else None)
    if "name" not in given:
        update["name"] = m.name
    if "max_length" not in cfg.hp.model_fields_set:
        update["hp"] = cfg.hp.model_copy(update={"max_length": m.max_length})
    resolved = cfg.model_copy(update=update)
    if (resolved.pair_column is not None) != pair:
        raise ConfigError(
            f"--init-from {parent.root} is a {m.task.value} model: "
            + ("give its --pair-column" if pair else "it reads one text, not a --pair-column")
        )
    if "replay_sources" not in given:
        sources = [] if cfg.replay_rows == 0 else _replay_sources(resolved, parent)
        resolved = resolved.model_copy(update={"replay_sources": sources})
    _check_eval_apart(resolved)
    return resolved, parent


def _replay_sources(cfg: ClassifyConfig, parent: Parent) -> list[ReplaySource]:
    """--replay, read like the new data; else the data the parent was trained on (its own
    replay sources included), as local files that exist here. None found is an error."""
    from training._progress import warn

    if cfg.replay is not None:
        return [
            ReplaySource(
                data=cfg.replay,
                split=cfg.split,
                text_columns=cfg.text_columns,
                label_column=cfg.label_column,
                pair_column=cfg.pair_column,
                label_names=cfg.label_names,
            )
        ]
    saved = parent.config
    candidates: list[ReplaySource] = []
    if saved.get("data"):
        candidates.append(
            ReplaySource(
                data=str(saved["data"]),
                split=saved.get("split"),
                text_columns=saved.get("text_columns") or ["text"],
                label_column=saved.get("label_column") or "label",
                pair_column=saved.get("pair_column"),
                label_names=saved.get("label_names"),
                limit=saved.get("limit"),
            )
        )
        if saved.get("replay_rows") != 0:  # a parent continued from its own parent
            earlier = saved.get("replay_sources") or []
            candidates += [ReplaySource.model_validate(source) for source in earlier]
    elif parent.manifest.train_data is not None:
        ref = parent.manifest.train_data
        candidates.append(
            ReplaySource(
                data=ref.source,
                split=ref.split,
                text_columns=cfg.text_columns,
                label_column=cfg.label_column,
                pair_column=cfg.pair_column,
            )
        )
    found = [c for c in candidates if Path(c.data).is_file()]
    if not found:
        named = ", ".join(c.data for c in candidates) or "data it does not record"
        raise ConfigError(
            f"no replay data: {parent.root} was trained on {named}, not a local file here; "
            "pass --replay DATA (earlier training data to mix in) or --replay-rows 0"
        )
    for missing in (c for c in candidates if c not in found):
        warn(f"replay source {missing.data} of {parent.root} is not a local file here: skipped")
    return found


def _check_eval_apart(cfg: ClassifyConfig) -> None:
    """The test data is reported only: it may be neither the new data nor a replay source."""
    if not cfg.eval_data or not Path(cfg.eval_data).is_file():
        return
    test = Path(cfg.eval_data).resolve()
    for source in [cfg.data, *(s.data for s in cfg.replay_sources or [])]:
        if Path(source).is_file() and Path(source).resolve() == test:
            raise ConfigError(
                f"--eval-data {cfg.eval_data} is also training data ({source}): test rows "
                "must never be trained on"
            )


@dataclass(frozen=True)
class TrainingRows:
    """The rows a run trains on, before its validation carve: the data's rows and, continued
    from a parent, a seeded sample of the replay sources after them."""

    rows: LabelledTexts
    new: DataRef
    new_rows: int
    replay: list[DataRef]
    replay_rows: int


def load_training_rows(cfg: ClassifyConfig) -> TrainingRows:
    """The training rows of `cfg` (continued from a parent: its labels, in its order, and the
    replay sample), checked trainable."""
    if cfg.init_from is not None and (cfg.parent_labels is None or cfg.replay_sources is None):
        cfg, _ = with_parent(cfg)
    data = load_labelled_texts(
        cfg.data,
        text_columns=cfg.text_columns,
        label_column=cfg.label_column,
        pair_column=cfg.pair_column,
        split=cfg.split,
        label_names=cfg.label_names,
        limit=cfg.limit,
    )
    if cfg.parent_labels is None or cfg.init_from is None:
        check_trainable(data)
        return TrainingRows(data, data.ref, len(data), [], 0)
    origin, labels = str(cfg.init_from), cfg.parent_labels
    new = _as_labels(data, labels, origin)
    pool: list[LabelledTexts] = []
    if cfg.replay_rows != 0:
        for s in cfg.replay_sources or []:
            source = load_labelled_texts(
                s.data,
                text_columns=s.text_columns,
                label_column=s.label_column,
                pair_column=s.pair_column,
                split=s.split,
                label_names=s.label_names,
                limit=s.limit,
            )
            pool.append(_as_labels(source, labels, origin))
    replay = _sample_replay(new, pool, cfg.replay_rows, seed=cfg.hp.seed)
    rows = LabelledTexts(
        texts=new.texts + replay.texts,
        labels=new.labels + replay.labels,
        label_names=labels,
        pairs=None if new.pairs is None else new.pairs + (replay.pairs or []),
        ref=new.ref.model_copy(update={"rows": len(new) + len(replay)}),
    )
    check_trainable(rows)
    return TrainingRows(rows, new.ref, len(new), [p.ref for p in pool], len(replay))


def _as_labels(data: LabelledTexts, labels: list[str], origin: str) -> LabelledTexts:
    """`data` with its labels indexing `labels` (a parent's, in its order); a label that is not
    among them is a ConfigError naming every such label."""
    present = [data.label_names[i] for i in sorted(set(data.labels))]
    unknown = [name for name in present if name not in labels]
    if unknown:
        raise ConfigError(
            f"{data.ref.source}: label(s) {', '.join(map(repr, unknown))} not among the labels "
            f"of --init-from {origin} {labels}; a continued model keeps its parent's labels and "
            "their order (routing rules name them): relabel or drop those rows, or train a new "
            "model without --init-from"
        )
    index = {name: i for i, name in enumerate(labels)}
    return LabelledTexts(
        texts=data.texts,
        labels=[index[data.label_names[i]] for i in data.labels],
        label_names=list(labels),
        pairs=data.pairs,
        ref=data.ref,
    )


def _sample_replay(
    new: LabelledTexts, pool: list[LabelledTexts], rows: int | None, *, seed: int
) -> LabelledTexts:
    """`rows` rows (default REPLAY_FACTOR x the new rows, capped by the pool) drawn without
    replacement from the pooled sources, seeded; a pooled row whose text (and pair) is among
    the new rows is never drawn: the new row's label supersedes it."""
    from training._progress import warn

    empty = LabelledTexts([], [], new.label_names, None if new.pairs is None else [])
    if not pool or rows == 0:
        return empty

    def unpaired(data: LabelledTexts) -> list[str | None]:
        return list(data.pairs) if data.pairs is not None else [None] * len(data)

    fresh = set(zip(new.texts, unpaired(new), strict=True))
    candidates = [
        (text, label, pair)
        for source in pool
        for text, label, pair in zip(source.texts, source.labels, unpaired(source), strict=True)
        if (text, pair) not in fresh
    ]
    want = REPLAY_FACTOR * len(new) if rows is None else rows
    if want > len(candidates):
        if rows is not None:
            warn(
                f"--replay-rows {rows}: the replay sources hold {len(candidates)} rows apart "
                "from the new ones; replaying all of them"
            )
        want = len(candidates)
    drawn = np.random.default_rng(seed).choice(len(candidates), size=want, replace=False)
    chosen = [candidates[i] for i in sorted(int(i) for i in drawn)]
    return LabelledTexts(
        texts=[c[0] for c in chosen],
        labels=[c[1] for c in chosen],
        label_names=new.label_names,
        pairs=None if new.pairs is None else [str(c[2]) for c in chosen],
    )


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
    """Train and validation (carved from train: with init_from, from the new and replay rows
    together), and the optional test split."""
    return _splits(cfg)[1:]


def _splits(
    cfg: ClassifyConfig,
) -> tuple[TrainingRows, LabelledTexts, LabelledTexts, LabelledTexts | None]:
    if cfg.init_from is not None and (cfg.parent_labels is None or cfg.replay_sources is None):
        cfg, _ = with_parent(cfg)
    rows = load_training_rows(cfg)
    data = rows.rows
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
    return rows, train, val, test


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
    and write the artifact to `cfg.output`. With `cfg.init_from`, training starts from that
    artifact's weights (encoder and head) on the new rows plus the replay sample, and the
    manifest records the parent in `lineage`."""
    cfg, parent = with_parent(cfg)
    rows, train, val, test = _splits(cfg)
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
    # A continued run loads weights and tokenizer from the parent artifact itself (its base
    # model need not be on this machine); the manifest still records the base model.
    weights = str(parent.root) if parent is not None else cfg.base_model
    search_records: list[dict[str, Any]] = []
    if cfg.hp_search:
        from training.hpsearch import search

        hp, search_records = search(
            task,
            train,
            val,
            base_model=weights,
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
    run = cfg.model_copy(update={"hp": hp})
    manifest = train_evaluate_save(
        task,
        train,
        val,
        test,
        run if parent is None else run.model_copy(update={"base_model": weights}),
        text_columns=[*cfg.text_columns, *([cfg.pair_column] if cfg.pair_column else [])],
        extra_metrics=extra,
        pooling=cfg.pooling,
    )
    if parent is not None:
        manifest = record_lineage(cfg.output, manifest, run, parent, rows)
    if cfg.lexical and cfg.pair_column is None:
        from training.lexical import add_lexical

        manifest = add_lexical(cfg.output, train, val, test, seed=hp.seed)
    return manifest


def record_lineage(
    root: Path, manifest: ModelManifest, run: ClassifyConfig, parent: Parent, rows: TrainingRows
) -> ModelManifest:
    """Rewrite the artifact at `root`, trained from `parent`'s weights, as `run` describes it:
    its training config and manifest name the parent's base model (not the parent directory
    the weights were loaded from), and the manifest's lineage names the parent and the rows."""
    training = json.loads(run.model_dump_json())
    config = root / TRAINING_CONFIG_FILE
    config.write_text(json.dumps(training, indent=2, default=str) + "\n", encoding="utf-8")
    lineage = Lineage(
        parent_name=parent.manifest.name,
        parent_version=parent.manifest.version,
        parent_manifest_sha256=parent.manifest_sha256,
        data=[rows.new, *rows.replay],
        new_rows=rows.new_rows,
        replay_rows=rows.replay_rows,
    )
    updated = manifest.model_copy(
        update={"base_model": run.base_model, "training": training, "lineage": lineage}
    )
    updated = with_files(updated, root, {config: FileRole.TRAINING_CONFIG})
    write_manifest(updated, root)
    return updated


def lexical_for(root: Path, cfg: ClassifyConfig) -> ModelManifest:
    """Fit and attach the lexical expert of the artifact at `root` that `cfg` (its training
    config, perhaps with other eval data) trained: the same rows and validation carve."""
    from training.lexical import add_lexical

    train, val, test = load_splits(cfg)
    check_plan(cfg.model_copy(update={"lexical": True}), train)
    return add_lexical(root, train, val, test, seed=cfg.hp.seed)


__all__ = [
    "REPLAY_FACTOR",
    "ClassWeight",
    "ClassifyConfig",
    "Parent",
    "ReplaySource",
    "TaskKind",
    "TrainingRows",
    "check_plan",
    "class_weights",
    "lexical_for",
    "load_training_rows",
    "read_parent",
    "record_lineage",
    "train_classifier",
    "with_parent",
]
