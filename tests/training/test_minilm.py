"""The real offline MiniLM loads as a classifier and runs a forward pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.models import DEFAULT_BASE_MODEL, resolve_base_model


def test_default_base_model_resolves_to_the_packaged_minilm(minilm_dir: Path) -> None:
    assert resolve_base_model(DEFAULT_BASE_MODEL) == str(minilm_dir)
    assert resolve_base_model("bert-base-cased") == "bert-base-cased"  # Hub ids pass through


@pytest.mark.slow
def test_offline_minilm_loads_with_a_classification_head(minilm_dir: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=4)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    batch = tokenizer(["Stocks rallied on Wall Street."], return_tensors="pt")
    with torch.inference_mode():
        logits = model(**batch).logits
    assert logits.shape == (1, 4)
