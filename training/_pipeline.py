"""The shared tail of the task pipelines: fine-tune, evaluate, write the versioned artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import structlog
from pydantic import Field
from pydantic_settings import BaseSettings

from schemas import DataRef, FileRole, ModelManifest, Pooling
from training._hp_options import default_hyperparameters
from training.artifact import new_version, save_artifact
from training.models import DEFAULT_BASE_MODEL
from training.tasks.base import Task
from training.trainer import Hyperparameters, fine_tune

log = structlog.get_logger(__name__)

EVAL_DIR = "eval"


class Split(Protocol):
    """What the pipeline needs of a data split: its size and where it came from."""

    @property
    def ref(self) -> DataRef: ...

    def __len__(self) -> int: ...


class RunSettings(BaseSettings):
    """The run options the task pipelines share; each task's settings add their own."""

    base_model: str = DEFAULT_BASE_MODEL
    work_dir: Path | None = Field(default=None, description="Checkpoints and logs; runs/NAME.")
    limit: int | None = Field(default=None, ge=2, description="Only the first N training rows.")
    eval_limit: int | None = Field(default=None, ge=1, description="Only N evaluation rows.")
    resume: bool = False
    hp: Hyperparameters = Field(default_factory=default_hyperparameters)


class RunConfig(Protocol):
    """The run options every task pipeline's settings object carries."""

    @property
    def name(self) -> str: ...
    @property
    def output(self) -> Path: ...
    @property
    def base_model(self) -> str: ...
    @property
    def work_dir(self) -> Path | None: ...
    @property
    def hp(self) -> Hyperparameters: ...
    @property
    def resume(self) -> bool: ...
    def model_dump_json(self) -> str: ...


def report_files(output: Path) -> dict[Path, FileRole]:
    """The evaluation reports under `output`/eval, for the manifest to checksum."""
    return {p: FileRole.REPORT for p in sorted((output / EVAL_DIR).rglob("*")) if p.is_file()}


def train_evaluate_save(
    task: Task,
    train: Split,
    val: Split,
    test: Split | None,
    cfg: RunConfig,
    *,
    text_columns: list[str] | None = None,
    extra_metrics: dict[str, Any] | None = None,
    class_labels: list[str] | None = None,
    pooling: Pooling = "cls",
) -> ModelManifest:
    """Fine-tune `task` (best epoch chosen on `val`), evaluate on `val` and on `test` when
    given (reports in `cfg.output/eval`), and save the artifact with its manifest, the whole
    `cfg` recorded as its training config. `class_labels`: the classes among the task's labels
    (a classify-and-tag head); `pooling`: how a sequence classifier's head reads the text."""
    hp, output = cfg.hp, cfg.output
    result = fine_tune(
        task,
        train,
        val,
        base_model=cfg.base_model,
        work_dir=cfg.work_dir or Path("runs") / cfg.name,
        hp=hp,
        resume=cfg.resume,
    )
    output.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {
        "validation": task.evaluate(
            result.model, result.tokenizer, val, max_length=hp.max_length, out_dir=None
        ),
        "train_seconds": result.train_seconds,
        "train_samples_per_second": result.train_samples_per_second,
        **(extra_metrics or {}),
    }
    if test is not None:
        metrics["test"] = task.evaluate(
            result.model,
            result.tokenizer,
            test,
            max_length=hp.max_length,
            out_dir=output / EVAL_DIR,
        )
    manifest = ModelManifest(
        name=cfg.name,
        version=new_version(),
        task=task.kind,
        labels=task.label_names,
        class_labels=class_labels,
        pooling=pooling,
        base_model=cfg.base_model,
        max_length=hp.max_length,
        text_columns=text_columns or [],
        train_data=train.ref,
        eval_data=test.ref if test is not None else val.ref,
        metrics=metrics,
    )
    extra = report_files(output)
    manifest = save_artifact(
        output,
        result.model,
        result.tokenizer,
        manifest,
        training_config=json.loads(cfg.model_dump_json()),
        extra_files=extra,
    )
    log.info("pipeline.saved", task=task.kind.value, output=str(output), version=manifest.version)
    return manifest
