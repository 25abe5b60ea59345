"""Optuna hyperparameter search over the fine-tuning core, scored on the validation split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from training.tasks.base import Task
from training.trainer import Hyperparameters, fine_tune

log = structlog.get_logger(__name__)


def default_space(trial: Any) -> dict[str, Any]:
    """The search space of BERT fine-tuning practice (lr 2e-5..1e-4, epochs, decay, warmup)."""
    return {
        "learning_rate": trial.suggest_float("learning_rate", 2e-5, 1.5e-4, log=True),
        "epochs": trial.suggest_int("epochs", 2, 5),
        "layer_decay": trial.suggest_float("layer_decay", 0.7, 1.0),
        "warmup_ratio": trial.suggest_float("warmup_ratio", 0.0, 0.2),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32]),
    }


def search(
    task: Task,
    train_data: Any,
    val_data: Any,
    *,
    base_model: str,
    work_dir: Path,
    base: Hyperparameters,
    trials: int,
    space: Callable[[Any], dict[str, Any]] = default_space,
    seed: int = 42,
) -> tuple[Hyperparameters, list[dict[str, Any]]]:
    """Run `trials` Optuna trials (TPE, median pruning off: each trial is a full short run).

    Returns the best hyperparameters and one record per trial (params, validation score, and
    `best`: true for the one trial whose params were chosen, so a tie is not ambiguous).
    """
    import optuna

    records: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        hp = base.model_copy(update=space(trial))
        result = fine_tune(
            task,
            train_data,
            val_data,
            base_model=base_model,
            work_dir=work_dir / f"trial-{trial.number}",
            hp=hp,
            tensorboard=False,
        )
        score = result.best_metrics[task.metric_for_best]
        records.append({"trial": trial.number, "params": trial.params, task.metric_for_best: score})
        log.info("hpsearch.trial", trial=trial.number, score=score, **trial.params)
        return score

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = base.model_copy(update=study.best_params)
    for record in records:
        record["best"] = record["trial"] == study.best_trial.number
    log.info("hpsearch.best", score=study.best_value, **study.best_params)
    return best, records
