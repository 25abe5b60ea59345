"""Mean-pooling classification head: trains, saves, reloads, exports and serves like [CLS]."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import InferenceSettings, load_predictor
from inference.pooling import mean_pooled
from schemas import TaskKind
from schemas.artifact import read_manifest
from training.artifact import load_artifact
from training.evaluation import predict_proba
from training.export import export_artifact
from training.pipelines.classification import ClassifyConfig, train_classifier

TEXTS = ["stock market profit bank", "team win season coach", "software internet computer"]


@pytest.fixture(scope="module")
def mean_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    from tests.training.conftest import topic_config

    root = tmp_path_factory.mktemp("mean")
    train_classifier(topic_config(root, tiny_base_model, pooling="mean", baseline=False))
    return root / "artifact"


def test_mean_pooled_logits_are_the_head_over_the_mean_token_vector(
    tiny_base_model: Path,
) -> None:
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(tiny_base_model, num_labels=3).eval()
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        expected = torch.stack(
            [model.classifier(hidden[i, : int(mask[i].sum())].mean(dim=0)) for i in range(2)]
        )
        pooled = mean_pooled(model)(input_ids=ids, attention_mask=mask).logits
    assert pooled.shape == (2, 3)
    torch.testing.assert_close(pooled, expected, rtol=1e-5, atol=1e-5)


def test_mean_pooled_loss_is_cross_entropy_of_the_pooled_logits(tiny_base_model: Path) -> None:
    from transformers import AutoModelForTokenClassification

    model = mean_pooled(
        AutoModelForTokenClassification.from_pretrained(tiny_base_model, num_labels=2).eval()
    )
    ids, labels = torch.tensor([[2, 7, 8, 3]]), torch.tensor([1])
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)
    assert model.accepts_loss_kwargs is False  # the Trainer scales for accumulation itself


def test_mean_pooled_classifier_learns_and_its_manifest_says_mean(mean_artifact: Path) -> None:
    manifest = read_manifest(mean_artifact)
    assert manifest.task is TaskKind.CLASSIFICATION
    assert manifest.pooling == "mean"
    config = json.loads((mean_artifact / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"]
    metrics = json.loads((mean_artifact / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.6  # topic words give the label away; chance is 25%


def test_reloaded_mean_pooled_artifact_predicts_one_label_per_text(mean_artifact: Path) -> None:
    model, tokenizer, manifest = load_artifact(mean_artifact)
    probs = predict_proba(model, tokenizer, TEXTS)
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert [manifest.labels[i] for i in probs.argmax(axis=1)][:2] == ["Business", "Sports"]


def test_exported_mean_pooled_graph_serves_the_same_labels_on_onnx_and_torch(
    mean_artifact: Path,
) -> None:
    report = export_artifact(mean_artifact)
    assert report.passed
    results = {}
    for backend, precision in (("onnx", "fp32"), ("onnx", "int8"), ("torch", "fp32")):
        settings = InferenceSettings.model_validate(
            {"backend": backend, "precision": precision, "threads": 1}
        )
        predictor = load_predictor(mean_artifact, settings)
        results[f"{backend}-{precision}"] = [c.label for c in predictor.classify(TEXTS)]  # type: ignore[union-attr]
    assert results["onnx-fp32"] == results["torch-fp32"] == results["onnx-int8"]
    assert results["torch-fp32"][:2] == ["Business", "Sports"]


def test_unknown_pooling_is_refused_by_the_config() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="pooling"):
        ClassifyConfig(data="x.csv", pooling="max")  # type: ignore[arg-type]


def test_artifact_pipeline_reads_a_mean_pooled_artifact_as_trained(mean_artifact: Path) -> None:
    from training.artifact import artifact_pipeline

    model, tokenizer, manifest = load_artifact(mean_artifact)
    probs = predict_proba(model, tokenizer, TEXTS)
    pipe = artifact_pipeline(mean_artifact, device="cpu")
    out = [pipe(text)[0] for text in TEXTS]
    assert [o["label"] for o in out] == [manifest.labels[i] for i in probs.argmax(axis=1)]
    np.testing.assert_allclose([o["score"] for o in out], probs.max(axis=1), rtol=1e-4)
