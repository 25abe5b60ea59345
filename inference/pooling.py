"""Mean pooling for sequence classifiers: a token-classification model read as one label a text."""

from __future__ import annotations

import inspect
from typing import Any

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def mean_pooled(model: Any) -> Any:
    """Make a token-classification model answer as a sequence classifier whose logits are the
    mean of its per-token logits over the attention mask; returns the same model.

    The head is linear, so the mean of the per-token logits is the head applied to the mean of
    the token vectors: a mean-pooling classification head, the pooling sentence encoders such as
    all-MiniLM-L6-v2 were trained with (their [CLS] vector and pooler were not). It lives in a
    stock architecture (AutoModelForTokenClassification), so saving, loading, ONNX export and
    int8 quantization need nothing new, and the exported graph takes the pooling with it: its
    `logits` output is (batch, labels) like any sequence classifier's.

    The forward is replaced on this instance only: call this again after every load (the
    artifact's manifest says `pooling: mean`).
    """
    import torch
    from torch.nn import functional
    from transformers.modeling_outputs import SequenceClassifierOutput

    token_forward = model.forward
    accepted = set(inspect.signature(token_forward).parameters)

    def forward(
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        given = dict(zip(_INPUTS, (input_ids, attention_mask, token_type_ids), strict=True))
        inputs = {k: v for k, v in given.items() if v is not None and k in accepted}
        logits = token_forward(**inputs).logits
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        mask = attention_mask.unsqueeze(-1).to(logits.dtype)
        pooled = (logits * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        loss: Any = None
        if labels is not None:
            loss = functional.cross_entropy(pooled.float(), labels.view(-1))
        return SequenceClassifierOutput(loss=loss, logits=pooled)

    model.forward = forward
    # The loss above is a batch mean: the Trainer must scale it for gradient accumulation itself
    # and not hand the forward a token count.
    model.accepts_loss_kwargs = False
    return model
