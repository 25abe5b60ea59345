"""ONNX export + int8 quantization of tiny artifacts, and the parity gates around it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from schemas import FileRole, ModelManifest, TaskKind
from schemas.artifact import read_manifest
from schemas.errors import ChecksumMismatch
from tests.fixtures_artifacts import TOPICS, topic_texts
from training.errors import GateFailed
from training.export import (
    FP32_FILE,
    INT8_FILE,
    EvalSample,
    ExportReport,
    GateSettings,
    ParityGateFailed,
    export_artifact,
)
from training.export.report import FAILED_REPORT_FILE, REPORT_FILE


def _copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / src.name
    shutil.copytree(src, out)
    return out


def _with_outlier_embedding(src: Path, out: Path) -> Path:
    """The same classifier with one huge value in the embedding of [MASK], a token the data
    never contains: fp32 predictions are unchanged, but the int8 embedding table's single
    scale now rounds every other embedding to zero."""
    import torch

    from training.artifact import load_artifact, save_artifact

    model, tokenizer, manifest = load_artifact(src)
    encoder: Any = model.base_model
    with torch.no_grad():
        encoder.embeddings.word_embeddings.weight[tokenizer.mask_token_id, 0] = 1000.0
    save_artifact(out, model, tokenizer, manifest.model_copy(update={"files": []}))
    return out


def _gate_sample() -> EvalSample:
    texts, labels = topic_texts(64, seed=3)
    return EvalSample.from_labelled(texts, labels, TOPICS)


def test_export_records_both_onnx_files_with_checksums(tiny_classifier_artifact: Path) -> None:
    manifest = read_manifest(tiny_classifier_artifact, verify=True)
    fp32 = manifest.file_for(FileRole.ONNX_FP32)
    int8 = manifest.file_for(FileRole.ONNX_INT8)
    report = manifest.file_for(FileRole.REPORT)
    assert fp32 is not None and fp32.path == FP32_FILE
    assert int8 is not None and int8.path == INT8_FILE
    assert report is not None and report.path == REPORT_FILE
    assert int8.size < fp32.size


def test_export_report_holds_sizes_and_passing_gate_figures(
    tiny_classifier_artifact: Path,
) -> None:
    report = ExportReport.model_validate_json(
        (tiny_classifier_artifact / REPORT_FILE).read_text(encoding="utf-8")
    )
    assert report.passed
    assert {g.name.split(" ")[0] for g in report.gates} == {
        "max_logit_diff",
        "argmax_agreement",
        "accuracy_drop_points",
    }
    assert report.parity is not None
    assert report.parity.metric == "accuracy"
    assert report.parity.max_logit_diff < 1e-4
    assert report.fp32_bytes == (tiny_classifier_artifact / FP32_FILE).stat().st_size
    assert report.size_reduction == pytest.approx(1 - report.int8_bytes / report.fp32_bytes)


def test_int8_graph_has_integer_matmuls_and_fp32_graph_has_none(
    tiny_classifier_artifact: Path,
) -> None:
    def ops(name: str) -> set[str]:
        return {n.op_type for n in onnx.load(str(tiny_classifier_artifact / name)).graph.node}

    integer_ops = {"MatMulInteger", "DynamicQuantizeMatMul", "QAttention"}
    assert ops(INT8_FILE) & integer_ops
    assert not ops(FP32_FILE) & integer_ops


def test_int8_graph_keeps_the_plain_ops_measured_faster_than_their_fused_kernels(
    tiny_classifier_artifact: Path,
) -> None:
    ops = {n.op_type for n in onnx.load(str(tiny_classifier_artifact / INT8_FILE)).graph.node}
    assert {"LayerNormalization", "Gelu", "Softmax", "MatMulInteger"} <= ops
    # The fused attention, skip-LayerNorm and bias-GELU kernels were slower (bench/RESULTS.md).
    assert not ops & {"SkipLayerNormalization", "QAttention", "Attention", "BiasGelu"}


@pytest.mark.parametrize("name", [FP32_FILE, INT8_FILE])
def test_exported_graphs_accept_any_batch_size_and_sequence_length(
    tiny_classifier_artifact: Path, name: str
) -> None:
    session = ort.InferenceSession(
        str(tiny_classifier_artifact / name), providers=["CPUExecutionProvider"]
    )
    for batch, length in [(1, 4), (5, 23), (2, 64)]:
        feeds = {i.name: np.ones((batch, length), dtype=np.int64) for i in session.get_inputs()}
        (logits,) = session.run(["logits"], feeds)
        assert logits.shape == (batch, len(TOPICS))


def test_ner_export_gates_on_entity_f1(tiny_ner_artifact: Path) -> None:
    report = ExportReport.model_validate_json((tiny_ner_artifact / REPORT_FILE).read_text())
    assert report.parity is not None
    assert report.parity.metric == "f1"
    assert report.parity.metric_fp32 is not None and report.parity.metric_fp32 > 0.9
    assert any(g.name.startswith("f1_drop_points") for g in report.gates)


def test_outlier_weights_fail_the_int8_gates_and_leave_the_artifact_unchanged(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    broken = _with_outlier_embedding(tiny_classifier_trained, tmp_path / "broken")
    manifest_before = (broken / "manifest.json").read_text()
    with pytest.raises(GateFailed) as caught:
        export_artifact(broken, eval_data=_gate_sample())
    message = str(caught.value)
    assert "FAIL argmax_agreement" in message
    assert "FAIL accuracy_drop_points" in message
    assert "PASS max_logit_diff" in message
    assert isinstance(caught.value, ParityGateFailed)
    parity = caught.value.report.parity
    assert parity is not None and parity.metric_fp32 == 1.0 and parity.metric_int8 is not None
    assert parity.metric_int8 < 0.5
    assert (broken / "manifest.json").read_text() == manifest_before
    assert not (broken / FP32_FILE).exists() and not (broken / INT8_FILE).exists()
    failed = json.loads((broken / FAILED_REPORT_FILE).read_text())
    assert failed["parity"]["argmax_agreement"] == parity.argmax_agreement


def test_disabled_gates_keep_the_files_and_report_the_failure(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    broken = _with_outlier_embedding(tiny_classifier_trained, tmp_path / "broken")
    report = export_artifact(broken, eval_data=_gate_sample(), gates=GateSettings(enabled=False))
    assert not report.passed
    assert not report.gates_enabled
    manifest = read_manifest(broken, verify=True)
    assert manifest.file_for(FileRole.ONNX_INT8) is not None


def test_export_without_labels_checks_parity_but_no_metric(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    art = _copy(tiny_classifier_trained, tmp_path)
    report = export_artifact(art, sample=8)
    assert report.parity is not None
    assert report.parity.data_source.startswith("built-in")
    assert report.parity.samples == 8
    assert report.parity.metric is None
    assert len(report.gates) == 2


def test_re_export_replaces_the_manifest_entries(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    art = _copy(tiny_classifier_artifact, tmp_path)
    export_artifact(art, eval_data=_gate_sample(), per_channel=False)
    manifest = read_manifest(art, verify=True)
    roles = [f.role for f in manifest.files]
    assert roles.count(FileRole.ONNX_INT8) == 1
    assert roles.count(FileRole.ONNX_FP32) == 1
    assert json.loads((art / REPORT_FILE).read_text())["per_channel"] is False


def test_export_refuses_an_artifact_whose_weights_were_modified(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    art = _copy(tiny_classifier_trained, tmp_path)
    with (art / "model.safetensors").open("r+b") as fh:
        fh.seek(-8, 2)
        fh.write(b"\x00" * 8)
    with pytest.raises(ChecksumMismatch, match="corrupt or was modified"):
        export_artifact(art)


def _untrained_artifact(base: Path, out: Path, task: TaskKind) -> Path:
    from transformers import (
        AutoModelForQuestionAnswering,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    from training.artifact import save_artifact

    if task is TaskKind.QUESTION_ANSWERING:
        model = AutoModelForQuestionAnswering.from_pretrained(base)
        labels = ["start", "end"]
    else:
        model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
        labels = ["different", "same"]
    manifest = ModelManifest(
        name=f"tiny-{task.value}",
        version="1",
        task=task,
        labels=labels,
        base_model=str(base),
        max_length=64,
        text_columns=["a", "b"],
    )
    save_artifact(out, model, AutoTokenizer.from_pretrained(base), manifest)
    return out


@pytest.mark.parametrize(
    ("task", "outputs"),
    [
        (TaskKind.PAIR_CLASSIFICATION, ["logits"]),
        (TaskKind.QUESTION_ANSWERING, ["start_logits", "end_logits"]),
    ],
)
def test_pair_and_qa_models_export_with_fp32_parity(
    tiny_base_model: Path, tmp_path: Path, task: TaskKind, outputs: list[str]
) -> None:
    art = _untrained_artifact(tiny_base_model, tmp_path / "art", task)
    # Random heads give near-tied logits, so only the fp32 parity is meaningful here.
    report = export_artifact(art, gates=GateSettings(enabled=False))
    assert report.parity is not None and report.parity.max_logit_diff < 1e-4
    session = ort.InferenceSession(str(art / INT8_FILE), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == outputs
    assert "token_type_ids" in [i.name for i in session.get_inputs()]


def test_export_falls_back_to_the_unfused_graph_when_fusion_fails(
    tiny_classifier_trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import onnxruntime.transformers.optimizer as optimizer

    def broken_fusion(*args: object, **kwargs: object) -> None:
        raise RuntimeError("fusion pattern mismatch")

    monkeypatch.setattr(optimizer, "optimize_model", broken_fusion)
    art = _copy(tiny_classifier_trained, tmp_path)
    report = export_artifact(art, eval_data=_gate_sample())
    assert not report.optimized
    assert report.passed
    assert read_manifest(art).file_for(FileRole.ONNX_INT8) is not None
