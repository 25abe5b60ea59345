"""Layer-wise learning-rate decay: lower layers of the encoder learn more slowly than the head."""

from __future__ import annotations

import re
from typing import Any

import torch
from transformers import PreTrainedModel

_LAYER = re.compile(r"\.(?:layer|layers|block|blocks)\.(\d+)\.")
_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")


def _depth(name: str, num_layers: int) -> int:
    """0 for embeddings, i+1 for encoder layer i, num_layers+1 for pooler and head."""
    if "embeddings" in name or "embed_tokens" in name:
        return 0
    match = _LAYER.search(name)
    if match:
        return int(match.group(1)) + 1
    return num_layers + 1


def param_groups(
    model: PreTrainedModel,
    *,
    lr: float,
    weight_decay: float,
    layer_decay: float | None,
    head_lr_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """AdamW parameter groups: lr * decay**(distance from the top); no weight decay on bias/norm;
    the head (and pooler) at lr * head_lr_scale."""
    num_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        depth = _depth(name, num_layers)
        scale = 1.0 if layer_decay is None else layer_decay ** (num_layers + 1 - depth)
        if depth == num_layers + 1:
            scale = head_lr_scale
        decay = not any(key in name for key in _NO_DECAY)
        group = groups.setdefault(
            (depth, decay),
            {"params": [], "lr": lr * scale, "weight_decay": weight_decay if decay else 0.0},
        )
        group["params"].append(param)
    return list(groups.values())


def build_optimizer(
    model: PreTrainedModel,
    *,
    lr: float,
    weight_decay: float,
    layer_decay: float | None,
    head_lr_scale: float = 1.0,
) -> torch.optim.Optimizer:
    """AdamW over the layer-wise groups; the Trainer adds warmup and the schedule."""
    groups = param_groups(
        model,
        lr=lr,
        weight_decay=weight_decay,
        layer_decay=layer_decay,
        head_lr_scale=head_lr_scale,
    )
    return torch.optim.AdamW(groups, lr=lr)
