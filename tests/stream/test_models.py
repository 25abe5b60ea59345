"""ReloadingModels: live model swaps when an artifact's version changes, never a broken swap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schemas.manifest import MANIFEST_FILE
from stream.errors import RulesInvalidError
from stream.inference import load_predictor
from stream.metrics import StreamMetrics
from stream.models import ReloadingModels
from stream.worker import ModelSet


def _bump_version(artifact: Path, version: str) -> None:
    # The manifest is not among its own checksummed files, so a new version verifies.
    path = artifact / MANIFEST_FILE
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["version"] = version
    path.write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture
def artifacts(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> tuple[Path, Path]:
    classifier, ner = tmp_path / "classifier", tmp_path / "ner"
    shutil.copytree(tiny_classifier_artifact, classifier)
    shutil.copytree(tiny_ner_artifact, ner)
    return classifier, ner


def _value(metrics: StreamMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_loads_both_models_and_reports_their_versions(artifacts: tuple[Path, Path]) -> None:
    metrics = StreamMetrics()
    models = ReloadingModels(*artifacts, load_predictor, metrics=metrics)

    assert models.versions() == {"classifier": "20250101T000000Z", "ner": "20250101T000000Z"}
    assert models().ner is not None
    labels = {"role": "classifier", "name": "tiny-topics", "version": "20250101T000000Z"}
    assert _value(metrics, "textroute_model_info", labels) == 1.0


def test_nothing_reloads_while_the_versions_on_disk_are_unchanged(
    artifacts: tuple[Path, Path],
) -> None:
    models = ReloadingModels(*artifacts, load_predictor)
    before = models()
    assert models.check_for_update() == []
    assert models() is before


def test_a_new_classifier_version_is_swapped_in_and_the_ner_model_kept(
    artifacts: tuple[Path, Path],
) -> None:
    metrics = StreamMetrics()
    models = ReloadingModels(*artifacts, load_predictor, metrics=metrics)
    old = models()

    _bump_version(artifacts[0], "20260101T000000Z")

    assert models.check_for_update() == ["classifier"]
    assert models().classifier.manifest.version == "20260101T000000Z"
    assert models().ner is old.ner
    old_labels = {"role": "classifier", "name": "tiny-topics", "version": "20250101T000000Z"}
    new_labels = {**old_labels, "version": "20260101T000000Z"}
    assert _value(metrics, "textroute_model_info", old_labels) == 0.0
    assert _value(metrics, "textroute_model_info", new_labels) == 1.0
    loaded = {"role": "classifier", "result": "loaded"}
    assert _value(metrics, "textroute_model_reloads_total", loaded) == 1.0


def test_a_corrupt_new_version_is_refused_and_the_old_models_stay(
    artifacts: tuple[Path, Path],
) -> None:
    metrics = StreamMetrics()
    models = ReloadingModels(*artifacts, load_predictor, metrics=metrics)
    old = models()

    (artifacts[1] / "model.int8.onnx").write_bytes(b"half-written")
    _bump_version(artifacts[1], "20260101T000000Z")

    assert models.check_for_update() == []
    assert models() is old
    failed = {"role": "ner", "result": "failed"}
    assert _value(metrics, "textroute_model_reloads_total", failed) == 1.0


def test_a_new_version_the_validator_rejects_is_refused(artifacts: tuple[Path, Path]) -> None:
    def only_the_first_version(models: ModelSet) -> None:
        if models.classifier.manifest.version != "20250101T000000Z":
            raise RulesInvalidError("the rules map a label the new model does not predict")

    models = ReloadingModels(*artifacts, load_predictor, validate=only_the_first_version)
    _bump_version(artifacts[0], "20260101T000000Z")

    assert models.check_for_update() == []
    assert models.versions()["classifier"] == "20250101T000000Z"


def test_routing_without_an_ner_model(artifacts: tuple[Path, Path]) -> None:
    models = ReloadingModels(artifacts[0], None, load_predictor)
    assert models().ner is None
    assert models.versions() == {"classifier": "20250101T000000Z"}
