"""`textroute export` of a classify-and-tag artifact: each head gated on its own data."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from schemas import FileRole
from schemas.artifact import read_manifest
from tests.fixtures_multitask import write_tagged_conll, write_topics_csv
from tests.training.test_export_cli import _app
from training.export import (
    ExportReport,
    GateSettings,
    ParityGateFailed,
    export_artifact,
    load_eval_sample,
)
from training.export.errors import ExportError
from training.export.report import FAILED_REPORT_FILE, REPORT_FILE


def _copy(src: Path, tmp_path: Path) -> Path:
    out = tmp_path / src.name
    shutil.copytree(src, out)
    return out


def test_each_head_is_gated_on_the_held_out_data_named_in_its_training_config(
    tiny_multitask_artifact: Path,
) -> None:
    report = ExportReport.model_validate_json(
        (tiny_multitask_artifact / REPORT_FILE).read_text(encoding="utf-8")
    )
    assert report.passed and report.parity is None
    classes, tags = report.heads["classification"], report.heads["ner"]
    assert classes.metric == "accuracy" and classes.data_source.endswith("topics_test.csv")
    assert tags.metric == "f1" and tags.data_source.endswith("conll/test.txt")
    for figures in (classes, tags):
        assert figures.metric_fp32 is not None and figures.metric_fp32 > 0.9
        assert figures.max_logit_diff < 1e-4
    assert {g.name.rsplit(" (", 1)[0] for g in report.gates} == {
        "classification: max_logit_diff",
        "classification: argmax_agreement",
        "classification: accuracy_drop_points",
        "ner: max_logit_diff",
        "ner: argmax_agreement",
        "ner: f1_drop_points",
    }


def test_the_exported_graph_gives_per_token_logits_over_tags_and_classes(
    tiny_multitask_artifact: Path,
) -> None:
    import numpy as np
    import onnxruntime as ort

    manifest = read_manifest(tiny_multitask_artifact)
    entry = manifest.file_for(FileRole.ONNX_INT8)
    assert entry is not None and manifest.file_for(FileRole.ONNX_FP32) is not None
    session = ort.InferenceSession(str(tiny_multitask_artifact / entry.path))
    ids = np.array([[2, 60, 61, 3]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    if "token_type_ids" in {i.name for i in session.get_inputs()}:
        feeds["token_type_ids"] = np.zeros_like(ids)
    (logits,) = session.run(["logits"], feeds)
    assert logits.shape == (1, 4, len(manifest.labels))


def test_export_command_gates_the_classes_on_data_and_the_tags_on_tag_data(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    art = _copy(tiny_multitask_trained, tmp_path)
    texts = write_topics_csv(tmp_path / "texts.csv", 24, seed=8)
    sentences = write_tagged_conll(tmp_path / "sentences.txt", 24, seed=9)

    result = CliRunner().invoke(
        _app(),
        ["export", str(art), "--data", str(texts), "--tag-data", str(sentences)],
        catch_exceptions=False,
        env={"COLUMNS": "200"},
    )

    assert result.exit_code == 0, result.output
    assert "classification: accuracy torch / fp32 / int8" in result.output
    assert "ner: f1 torch / fp32 / int8" in result.output
    report = json.loads((art / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["heads"]["classification"]["data_source"] == str(texts)
    assert report["heads"]["ner"]["data_source"] == str(sentences)
    assert read_manifest(art).file_for(FileRole.ONNX_INT8) is not None


def test_labelled_texts_map_onto_the_classes_not_the_whole_head(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    manifest = read_manifest(tiny_multitask_trained)
    texts = write_topics_csv(tmp_path / "texts.csv", 8, seed=8)
    sample = load_eval_sample(texts, manifest)
    assert sample.labels is not None
    assert set(sample.labels) <= set(range(len(manifest.class_labels or [])))


def test_a_failing_head_fails_the_export_and_leaves_the_artifact_as_it_was(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    art = _copy(tiny_multitask_trained, tmp_path)
    before = read_manifest(art)

    with pytest.raises(ParityGateFailed) as caught:
        export_artifact(art, gates=GateSettings(max_logit_diff=0.0), sample=16)

    report = caught.value.report
    assert set(report.heads) == {"classification", "ner"}
    message = str(caught.value)
    assert "FAIL classification: max_logit_diff" in message
    assert "ner: on 16 examples" in message
    assert read_manifest(art).files == before.files
    assert (art / FAILED_REPORT_FILE).is_file() and not (art / "model.onnx").exists()


def test_tag_data_for_a_single_task_artifact_is_refused(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    from training.export import EvalSample

    sentences = EvalSample(source="memory", words=[["john"]], tags=[["B-PER"]])
    with pytest.raises(ExportError, match="--tag-data"):
        export_artifact(_copy(tiny_classifier_trained, tmp_path), tag_data=sentences)
