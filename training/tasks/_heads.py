"""Heads over label lists: the config of a head's labels, and a view of one slice of a shared
head, so single-task evaluation code can run on it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


def label_maps(labels: list[str]) -> dict[str, Any]:
    """`from_pretrained` arguments giving a head these labels, in order."""
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }


@dataclass(frozen=True)
class _SliceConfig:
    """The config attributes the evaluation helpers read: the slice's label count and names."""

    num_labels: int
    id2label: dict[int, str]


@dataclass(frozen=True)
class _SliceOutput:
    logits: torch.Tensor


class HeadSlice(torch.nn.Module):
    """Wraps a token-classification model whose labels are several tasks' labels side by side,
    and answers like a model of one task: logits of the columns `start:stop` only, per token,
    or at the first token ([CLS]) only with `first_token` (a sequence classifier's shape).

    The softmax the evaluation helpers take over these logits is then over this task's labels
    alone, as inference reads them.
    """

    def __init__(
        self, model: Any, labels: list[str], start: int, *, first_token: bool = False
    ) -> None:
        super().__init__()
        self.model = model
        self.start = start
        self.stop = start + len(labels)
        self.first_token = first_token
        self.config = _SliceConfig(len(labels), dict(enumerate(labels)))

    def forward(self, **inputs: Any) -> _SliceOutput:
        logits = self.model(**inputs).logits[..., self.start : self.stop]
        return _SliceOutput(logits[:, 0] if self.first_token else logits)
