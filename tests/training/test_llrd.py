"""Layer-wise lr decay gives lower layers smaller learning rates and skips decay on norms."""

from __future__ import annotations

from pathlib import Path

from training._llrd import param_groups


def test_lower_layers_get_geometrically_smaller_lr(tiny_base_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_base_model, num_labels=3)
    groups = param_groups(model, lr=1e-3, weight_decay=0.01, layer_decay=0.5)
    by_name = {id(p): g for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    emb = by_name[id(named["bert.embeddings.word_embeddings.weight"])]
    layer0 = by_name[id(named["bert.encoder.layer.0.attention.self.query.weight"])]
    layer1 = by_name[id(named["bert.encoder.layer.1.attention.self.query.weight"])]
    head = by_name[id(named["classifier.weight"])]
    # 2 layers: head 1e-3, layer1 5e-4, layer0 2.5e-4, embeddings 1.25e-4.
    assert head["lr"] == 1e-3
    assert layer1["lr"] == 5e-4
    assert layer0["lr"] == 2.5e-4
    assert emb["lr"] == 1.25e-4
    norm = by_name[id(named["bert.encoder.layer.0.output.LayerNorm.weight"])]
    assert norm["weight_decay"] == 0.0 and layer0["weight_decay"] == 0.01


def test_without_decay_every_group_has_the_base_lr(tiny_base_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_base_model, num_labels=2)
    groups = param_groups(model, lr=2e-5, weight_decay=0.01, layer_decay=None)
    assert {g["lr"] for g in groups} == {2e-5}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_head_lr_scale_multiplies_only_the_head_and_pooler(tiny_base_model: Path) -> None:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_base_model, num_labels=90)
    groups = param_groups(model, lr=1e-4, weight_decay=0.01, layer_decay=None, head_lr_scale=20)
    by_name = {id(p): g["lr"] for g in groups for p in g["params"]}
    lrs = {name: by_name[id(p)] for name, p in model.named_parameters()}
    assert lrs["classifier.weight"] == lrs["classifier.bias"] == 2e-3
    assert lrs["bert.pooler.dense.weight"] == 2e-3
    assert lrs["bert.encoder.layer.1.attention.self.query.weight"] == 1e-4
    assert lrs["bert.embeddings.word_embeddings.weight"] == 1e-4
