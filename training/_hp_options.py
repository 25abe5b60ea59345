"""The fine-tuning hyperparameter flags shared by the `textroute train` task commands."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the trainer pulls in torch: keep `textroute --help` fast
    from training.trainer import Hyperparameters

# CLI flag name -> (Hyperparameters field, type, default, help). Defaults follow Hyperparameters.
_FLAGS: dict[str, tuple[str, Any, Any, str]] = {
    "epochs": ("epochs", float, 3.0, "Training epochs."),
    "lr": ("learning_rate", float, 5e-5, "Peak learning rate."),
    "batch_size": ("batch_size", int, 32, "Per-device batch size."),
    "grad_accum": ("gradient_accumulation", int, 1, "Gradient accumulation steps."),
    "warmup_ratio": ("warmup_ratio", float, 0.1, "Linear warmup as a fraction of steps."),
    "weight_decay": ("weight_decay", float, 0.01, "AdamW weight decay."),
    "max_grad_norm": ("max_grad_norm", float, 1.0, "Gradient clipping norm."),
    "layer_decay": ("layer_decay", float | None, None, "Layer-wise lr decay factor, e.g. 0.9."),
    "scheduler": ("scheduler", str, "linear", "Learning-rate schedule (linear, cosine, ...)."),
    "max_length": ("max_length", int, 128, "Max subword tokens per window."),
    "patience": ("early_stopping_patience", int, 2, "Early-stopping patience; 0 disables."),
    "eval_steps": ("eval_steps", int | None, None, "Evaluate every N steps, not each epoch."),
    "precision": ("precision", str, "auto", "auto|fp32|fp16|bf16 (fp16/bf16 need a GPU)."),
    "seed": ("seed", int, 42, "Random seed."),
    "threads": ("threads", int, 0, "CPU threads for torch; 0 = default."),
    "max_steps": ("max_steps", int, -1, "Stop after N optimizer steps (smoke runs)."),
    "min_steps": (
        "min_steps",
        int,
        0,
        "Raise the epochs so training takes at least N optimizer steps (small data); 0: off.",
    ),
}
# Flags a command opts into (`include`): label smoothing suits class and tag heads, while the
# Trainer's smoother would misread a regression score or a span position as a class.
_OPTIONAL_FLAGS: dict[str, tuple[str, Any, Any, str]] = {
    "label_smoothing": ("label_smoothing", float, 0.0, "Label smoothing factor."),
    # Many new outputs (one sigmoid per label) learn faster than the pretrained encoder should.
    "head_lr_scale": ("head_lr_scale", float, 1.0, "The head's lr as a multiple of --lr."),
}
_ALL_FLAGS = {**_FLAGS, **_OPTIONAL_FLAGS}


def default_hyperparameters(**overrides: Any) -> Hyperparameters:
    """Hyperparameters with their defaults, `overrides` (field names) applied and validated."""
    from training.trainer import Hyperparameters

    return Hyperparameters.model_validate(overrides)


def flag_defaults(**fields: Any) -> dict[str, Any]:
    """Hyperparameters field values (e.g. a task's preset) as `with_hyperparameters` defaults,
    keyed by their flag names."""
    flags = {field: flag for flag, (field, *_) in _ALL_FLAGS.items()}
    return {flags[field]: value for field, value in fields.items()}


def hyperparameters_from_flags(**flags: Any) -> Hyperparameters:
    """Build Hyperparameters from the CLI flag values (`patience 0` disables early stopping)."""
    values = {_ALL_FLAGS[name][0]: value for name, value in flags.items()}
    if not values.get("early_stopping_patience"):
        values["early_stopping_patience"] = None
    return default_hyperparameters(**values)


def with_hyperparameters(
    *, include: Sequence[str] = (), **defaults: Any
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a typer command taking `hp: Hyperparameters` so it gets the hyperparameter
    flags instead (`defaults` override the per-task default of a flag, e.g. lr=1e-4), plus the
    optional flags named in `include` (e.g. label_smoothing)."""
    unknown = set(include) - set(_OPTIONAL_FLAGS)
    if unknown:
        raise ValueError(f"unknown optional hyperparameter flag(s) {sorted(unknown)}")
    table = {**_FLAGS, **{name: _OPTIONAL_FLAGS[name] for name in include}}
    unknown = set(defaults) - set(table)
    if unknown:
        raise ValueError(f"unknown hyperparameter flag(s) {sorted(unknown)}")

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(func)
        # Resolve the command's own string annotations (postponed evaluation) so typer sees
        # its Annotated options; `hp` is left out, its type is imported for type checking only.
        own = [
            p.replace(annotation=eval(p.annotation, func.__globals__))
            if isinstance(p.annotation, str)
            else p
            for p in signature.parameters.values()
            if p.name != "hp"
        ]
        extra = [
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                default=defaults.get(name, default),
                annotation=Annotated[kind, typer.Option(help=help_text)],
            )
            for name, (_, kind, default, help_text) in table.items()
        ]

        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            flags = {name: kwargs.pop(name) for name in table if name in kwargs}
            return func(*args, hp=hyperparameters_from_flags(**flags), **kwargs)

        params = [*own, *extra]
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params}
        return command

    return decorate
