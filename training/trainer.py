"""The one fine-tuning path: Hugging Face Trainer with the practice a practitioner expects."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import structlog
from pydantic import BaseModel, Field, model_validator

from training.errors import ConfigError, ModelLoadError
from training.models import resolve_base_model
from training.tasks.base import Task, TaskLoss

log = structlog.get_logger(__name__)

Precision = Literal["auto", "fp32", "fp16", "bf16"]


class Hyperparameters(BaseModel):
    """Fine-tuning hyperparameters; defaults follow BERT fine-tuning practice."""

    learning_rate: float = Field(5e-5, gt=0, le=1e-2)
    epochs: float = Field(3.0, gt=0)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    layer_decay: float | None = Field(None, gt=0, le=1, description="Layer-wise lr decay factor.")
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    head_lr_scale: float = Field(
        1.0, gt=0, le=1000, description="The new head's lr as a multiple of learning_rate."
    )
    scheduler: str = "linear"
    max_length: int = Field(128, ge=8, le=8192)
    early_stopping_patience: int | None = Field(2, ge=1)
    eval_steps: int | None = Field(
        None, ge=1, description="Evaluate every N steps; None: each epoch."
    )
    precision: Precision = "auto"
    seed: int = 42
    threads: int = Field(0, ge=0, description="torch intra-op threads; 0 leaves torch's default.")
    max_steps: int = Field(-1, description="Stop after N optimizer steps (tests, smoke runs).")
    min_steps: int = Field(
        0, ge=0, description="Raise the epochs so training takes at least N optimizer steps."
    )

    @model_validator(mode="after")
    def _check(self) -> Hyperparameters:
        if self.precision in ("fp16", "bf16"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"precision {self.precision} needs a GPU; use fp32 or auto")
        return self


@dataclass
class FineTuneResult:
    """What a finished fine-tuning run hands back."""

    model: Any
    tokenizer: Any
    best_metrics: dict[str, float]
    history: list[dict[str, Any]]
    train_seconds: float
    train_samples_per_second: float
    best_checkpoint: str | None
    hyperparameters: dict[str, Any] = field(default_factory=dict)


def _precision_flags(precision: Precision) -> dict[str, bool]:
    import torch

    if precision == "fp32" or not torch.cuda.is_available():
        return {"fp16": False, "bf16": False}
    if precision == "auto":
        bf16 = torch.cuda.is_bf16_supported()
        return {"fp16": not bf16, "bf16": bf16}
    return {"fp16": precision == "fp16", "bf16": precision == "bf16"}


def load_tokenizer(base_model: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(resolve_base_model(base_model))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"cannot load tokenizer of {base_model!r}: {exc}. Offline? Use a local directory "
            "or the default offline MiniLM."
        ) from exc


def fine_tune(
    task: Task,
    train_data: Any,
    val_data: Any,
    *,
    base_model: str,
    work_dir: Path,
    hp: Hyperparameters,
    resume: bool = False,
    tensorboard: bool = True,
    extra_callbacks: list[Any] | None = None,
) -> FineTuneResult:
    """Fine-tune `task`'s model on `train_data`, selecting the best epoch on `val_data`.

    Checkpoints go to `work_dir/checkpoints` (resumable), TensorBoard logs to `work_dir/tb`.
    """
    import torch
    from transformers import EarlyStoppingCallback, Trainer, TrainingArguments, set_seed

    from training._llrd import build_optimizer

    if hp.threads:
        torch.set_num_threads(hp.threads)
    work_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = load_tokenizer(base_model)
    # The new head's weights are drawn now, before the Trainer seeds: seed here so a run does
    # not depend on what else this process drew before.
    set_seed(hp.seed)
    try:
        model = task.build_model(resolve_base_model(base_model))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load base model {base_model!r}: {exc}") from exc

    train_ds = task.encode(tokenizer, train_data, hp.max_length)
    val_ds = task.encode(tokenizer, val_data, hp.max_length)
    epochs = epochs_for_min_steps(hp, len(train_ds))
    strategy = "steps" if hp.eval_steps else "epoch"
    os.environ.setdefault("TENSORBOARD_LOGGING_DIR", str(work_dir / "tb"))
    precision = _precision_flags(hp.precision)
    args = TrainingArguments(
        output_dir=str(work_dir / "checkpoints"),
        learning_rate=hp.learning_rate,
        num_train_epochs=epochs,
        max_steps=hp.max_steps,
        per_device_train_batch_size=hp.batch_size,
        per_device_eval_batch_size=hp.eval_batch_size,
        gradient_accumulation_steps=hp.gradient_accumulation,
        warmup_steps=hp.warmup_ratio,  # transformers 5: a float below 1 is a ratio
        weight_decay=hp.weight_decay,
        max_grad_norm=hp.max_grad_norm,
        label_smoothing_factor=hp.label_smoothing,
        lr_scheduler_type=hp.scheduler,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=hp.eval_steps,
        save_steps=hp.eval_steps or 500,  # read only with the "steps" strategy
        logging_steps=max(1, min(50, hp.eval_steps or 50)),
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model=task.metric_for_best,
        greater_is_better=True,
        train_sampling_strategy="group_by_length",
        report_to=["tensorboard"] if tensorboard else "none",
        seed=hp.seed,
        dataloader_num_workers=0,
        # Pinned memory only helps a copy to a GPU; on CPU torch warns about it every epoch.
        dataloader_pin_memory=torch.cuda.is_available(),
        disable_tqdm=False,
        fp16=precision["fp16"],
        bf16=precision["bf16"],
    )
    callbacks: list[Any] = list(extra_callbacks or [])
    if hp.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=hp.early_stopping_patience))
    optimizer = build_optimizer(
        model,
        lr=hp.learning_rate,
        weight_decay=hp.weight_decay,
        layer_decay=hp.layer_decay,
        head_lr_scale=hp.head_lr_scale,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        data_collator=task.collator(tokenizer),
        processing_class=tokenizer,
        compute_metrics=task.compute_metrics,
        callbacks=callbacks,
        optimizers=(optimizer, None),
        compute_loss_func=_task_loss(task, model, hp.gradient_accumulation),
    )
    log.info(
        "fine_tune.start",
        task=task.kind.value,
        base_model=base_model,
        train_rows=len(train_ds),
        val_rows=len(val_ds),
        **hp.model_dump(),
    )
    start = time.perf_counter()
    checkpoint = _last_checkpoint(work_dir / "checkpoints") if resume else None
    output = trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    best = trainer.evaluate()
    history = list(trainer.state.log_history)
    log.info("fine_tune.done", seconds=round(seconds, 1), **{k: v for k, v in best.items()})
    return FineTuneResult(
        model=trainer.model,
        tokenizer=tokenizer,
        best_metrics={k.removeprefix("eval_"): float(v) for k, v in best.items()},
        history=history,
        train_seconds=seconds,
        train_samples_per_second=float(output.metrics.get("train_samples_per_second", 0.0)),
        best_checkpoint=trainer.state.best_model_checkpoint,
        hyperparameters=hp.model_dump(),
    )


def epochs_for_min_steps(hp: Hyperparameters, rows: int) -> float:
    """`hp.epochs`, raised when they would give fewer than `hp.min_steps` optimizer steps: a
    few hundred rows at 32 a batch get a few dozen updates per epoch, too few for a new head
    to leave the majority class (`max_steps` wins when set)."""
    if hp.min_steps <= 0 or hp.max_steps > 0 or rows <= 0:
        return hp.epochs
    per_epoch = math.ceil(rows / (hp.batch_size * hp.gradient_accumulation))
    if per_epoch * hp.epochs >= hp.min_steps:
        return hp.epochs
    epochs = math.ceil(hp.min_steps / per_epoch)
    from training._progress import warn

    warn(
        f"{rows} training rows give {per_epoch} steps an epoch: training {epochs} epochs "
        f"instead of {hp.epochs:g} to reach --min-steps {hp.min_steps}"
    )
    return float(epochs)


def _task_loss(task: Task, model: Any, accumulation: int) -> Any:
    """The task's own loss for the Trainer, when the task has one (None: the model's loss)."""
    if not isinstance(task, TaskLoss):
        return None

    def compute_loss(outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        loss = task.loss(outputs, labels, num_items_in_batch)
        # Given a compute_loss_func, the Trainer leaves the division by the accumulation steps
        # to it; evaluation losses are not accumulated.
        return loss / accumulation if model.training else loss

    return compute_loss


def _last_checkpoint(directory: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not directory.is_dir():
        return None
    found: str | None = get_last_checkpoint(str(directory))  # type: ignore[no-untyped-call]
    return found
