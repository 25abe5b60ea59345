"""End to end: a tiny BERT trained on generated topics, evaluated, saved, reloaded, verified."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas import FileRole, TaskKind
from schemas.artifact import read_manifest
from schemas.errors import ArtifactFileMissing, ChecksumMismatch, ManifestMissing
from training.artifact import load_artifact
from training.evaluate_classifiers import evaluate_models
from training.pipelines.classification import train_classifier


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    from tests.training.conftest import topic_config

    root = tmp_path_factory.mktemp("clf")
    train_classifier(topic_config(root, tiny_base_model))
    return root


def test_training_learns_generated_topics_and_beats_chance(trained: Path) -> None:
    metrics = json.loads((trained / "artifact" / "metrics.json").read_text())
    # Topic words give the label away; 4 classes make chance 25%.
    assert metrics["test"]["accuracy"] > 0.6
    assert set(metrics["test"]["per_class"]) == {"Business", "Sci/Tech", "Sports", "World"}
    assert metrics["baseline"]["model"].startswith("tfidf")
    assert metrics["baseline"]["latency_ms_per_text"] > 0
    assert metrics["train_samples_per_second"] > 0


def test_baseline_figures_are_scikit_learns_on_the_runs_own_train_and_test_rows(
    trained: Path,
) -> None:
    from sklearn.metrics import accuracy_score, f1_score

    from tests.training.conftest import tfidf_nb_pipeline
    from training.pipelines.classification import ClassifyConfig, load_splits

    artifact = trained / "artifact"
    baseline = json.loads((artifact / "metrics.json").read_text())["baseline"]
    saved = json.loads((artifact / "training_config.json").read_text())
    # The same carve of the training rows as the run (seeded), and its test data.
    train, _, test = load_splits(ClassifyConfig.model_validate(saved))
    assert test is not None
    fitted = tfidf_nb_pipeline(baseline["alpha"]).fit(train.texts, train.labels)
    predicted = fitted.predict(test.texts)
    assert baseline["rows"] == len(test) == 80
    assert baseline["accuracy"] == pytest.approx(accuracy_score(test.labels, predicted))
    assert baseline["f1_macro"] == pytest.approx(f1_score(test.labels, predicted, average="macro"))


def test_evaluation_writes_confusion_png_and_misclassified_csv(trained: Path) -> None:
    eval_dir = trained / "artifact" / "eval"
    assert (eval_dir / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = (eval_dir / "misclassified.csv").read_text().splitlines()[0]
    assert header == "row,text,gold,predicted,confidence"


def test_manifest_records_task_labels_data_and_checksums(trained: Path) -> None:
    manifest = read_manifest(trained / "artifact")
    assert manifest.task is TaskKind.CLASSIFICATION
    assert manifest.labels == ["Business", "Sci/Tech", "Sports", "World"]
    assert manifest.train_data is not None and manifest.train_data.rows == 288
    roles = {f.role for f in manifest.files}
    assert {FileRole.WEIGHTS, FileRole.TOKENIZER, FileRole.LABELS, FileRole.REPORT} <= roles
    assert manifest.file_for(FileRole.WEIGHTS).path == "model.safetensors"  # type: ignore[union-attr]


def test_loaded_artifact_predicts_like_the_saved_model(trained: Path) -> None:
    from training.evaluation import predict_proba

    model, tokenizer, manifest = load_artifact(trained / "artifact")
    probs = predict_proba(model, tokenizer, ["stock market profit bank", "team win season coach"])
    assert [manifest.labels[i] for i in probs.argmax(axis=1)] == ["Business", "Sports"]


def test_ensemble_evaluation_reports_members_and_both_votes(trained: Path, tmp_path: Path) -> None:
    art = trained / "artifact"
    results = evaluate_models(
        [art, art],
        data=str(trained / "test.csv"),
        text_columns=["title", "description"],
        label_column="label",
        split=None,
        output=tmp_path / "ev",
    )
    assert {"ensemble-soft", "ensemble-majority"} <= set(results)
    # Two identical members: both votes must equal the member's accuracy.
    assert {"artifact", "artifact-2"} <= set(results)  # a model given twice gets its own report
    member = results["artifact"]["accuracy"]
    assert results["ensemble-soft"]["accuracy"] == pytest.approx(member)
    assert results["ensemble-majority"]["accuracy"] == pytest.approx(member)
    assert (tmp_path / "ev" / "summary.json").is_file()


def test_corrupt_weights_fail_checksum_verification(trained: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained / "artifact", copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=r"model\.safetensors is corrupt"):
        load_artifact(copy)


def test_missing_artifact_file_and_missing_manifest_are_named(
    trained: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained / "artifact", copy)
    (copy / "tokenizer.json").unlink()
    with pytest.raises(ArtifactFileMissing, match=r"tokenizer\.json"):
        read_manifest(copy)
    with pytest.raises(ManifestMissing, match="not a textroute model artifact"):
        read_manifest(tmp_path)
