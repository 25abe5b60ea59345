"""The Task protocol: what the one training core needs to know about a fine-tuning task."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from schemas import TaskKind


class Task(Protocol):
    """A fine-tuning task: encoder + head, its data encoding, metrics and full evaluation.

    The trainer never special-cases a task; everything task-specific goes through this.
    """

    kind: TaskKind
    #: Index -> label name (BIO tags for NER; ["start", "end"]-free tasks may leave it empty).
    label_names: list[str]
    #: Key of `compute_metrics` output that picks the best checkpoint (higher is better).
    metric_for_best: str

    def build_model(self, base_model: str) -> PreTrainedModel:
        """The pretrained encoder with this task's head, label maps set in its config."""
        ...

    def encode(self, tokenizer: PreTrainedTokenizerBase, data: Any, max_length: int) -> Any:
        """Tokenize a split into a `datasets.Dataset` the Trainer can consume (with labels)."""
        ...

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """The data collator that pads batches dynamically."""
        ...

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        """Quick metrics computed by the Trainer at each evaluation (validation split)."""
        ...

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: Any,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """Full evaluation with reports written to `out_dir`; returns the metrics dict."""
        ...


@runtime_checkable
class TaskLoss(Protocol):
    """An optional part of a Task: its own training loss, for tasks whose labelled positions
    must not be weighted one by one (the trainer hands it to the Trainer's compute_loss_func).
    """

    def loss(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        """The mean loss of one batch from the model outputs and the collated labels."""
        ...
