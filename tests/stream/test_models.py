"""ReloadingModels: live model swaps when an artifact's version changes, never a broken swap."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from inference import load_predictor
from schemas.manifest import MANIFEST_FILE, TaskKind
from stream.errors import ModelSlotError, RulesInvalidError
from stream.metrics import StreamMetrics
from stream.model_set import ModelSet
from stream.models import Loader, ReloadingModels


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


def _failed_reloads(metrics: StreamMetrics, role: str) -> float | None:
    return _value(metrics, "textroute_model_reloads_total", {"role": role, "result": "failed"})


def test_a_manifest_nested_too_deep_keeps_the_old_models_and_counts_a_failed_reload(
    artifacts: tuple[Path, Path],
) -> None:
    metrics = StreamMetrics()
    models = ReloadingModels(*artifacts, load_predictor, metrics=metrics)
    old = models()
    # json.loads gives up on this with RecursionError, which is no ManifestInvalid.
    (artifacts[0] / MANIFEST_FILE).write_text("[" * 100_000, encoding="utf-8")

    with capture_logs() as logs:
        assert models.check_for_update() == []

    assert models() is old
    assert _failed_reloads(metrics, "classifier") == 1.0
    (failed,) = [e for e in logs if e["event"] == "models.reload_failed"]
    assert failed["roles"] == ["classifier"] and failed["error"].startswith("RecursionError")


def test_a_manifest_removed_between_its_check_and_its_read_keeps_the_old_models(
    artifacts: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = StreamMetrics()
    models = ReloadingModels(*artifacts, load_predictor, metrics=metrics)
    old = models()
    manifest = artifacts[1] / MANIFEST_FILE
    read_text = Path.read_text

    def removed_first(path: Path, *args: Any, **kwargs: Any) -> str:
        # The deploy that swaps the artifact deletes the file right after is_file() said yes.
        if path == manifest and path.exists():
            path.unlink()
        return read_text(path, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", removed_first)
    with capture_logs() as logs:
        assert models.check_for_update() == []

    assert models() is old
    assert _failed_reloads(metrics, "ner") == 1.0
    (failed,) = [e for e in logs if e["event"] == "models.reload_failed"]
    assert failed["error"].startswith("FileNotFoundError")


def test_a_model_directory_emptied_under_the_worker_keeps_the_old_models(
    artifacts: tuple[Path, Path],
) -> None:
    metrics = StreamMetrics()
    models = ReloadingModels(*artifacts, load_predictor, metrics=metrics)
    old = models()
    shutil.rmtree(artifacts[0])

    assert models.check_for_update() == []

    assert models() is old
    assert _failed_reloads(metrics, "classifier") == 1.0


def test_an_ner_artifact_in_the_classifier_slot_is_refused_at_reload(
    artifacts: tuple[Path, Path],
) -> None:
    metrics = StreamMetrics()
    classifier_dir, ner_dir = artifacts
    models = ReloadingModels(classifier_dir, ner_dir, load_predictor, metrics=metrics)
    old = models()
    shutil.rmtree(classifier_dir)
    shutil.copytree(ner_dir, classifier_dir)
    _bump_version(classifier_dir, "20260101T000000Z")

    with capture_logs() as logs:
        assert models.check_for_update() == []

    assert models() is old and models.versions()["classifier"] == "20250101T000000Z"
    assert _failed_reloads(metrics, "classifier") == 1.0
    (failed,) = [e for e in logs if e["event"] == "models.reload_failed"]
    assert failed["error"].startswith("ModelSlotError")


def _counting_loader(loads: list[Path]) -> Loader:
    def load(path: Path) -> Any:
        loads.append(path)
        return load_predictor(path)

    return load


@pytest.mark.parametrize(
    ("slots", "slot", "found", "expected"),
    [
        (
            ("ner", None),
            "classifier",
            "token-classification",
            "classification or multi-label-classification or classify",
        ),
        (("classifier", "classifier-copy"), "NER", "classification", "token-classification or"),
        (("classifier", "classifier"), "classifier+NER", "classification", "classify-and-tag"),
    ],
    ids=["ner-as-classifier", "classifier-as-ner", "classifier-as-both"],
)
def test_an_artifact_whose_task_does_not_fit_its_slot_is_refused_before_loading(
    artifacts: tuple[Path, Path],
    tmp_path: Path,
    slots: tuple[str, str | None],
    slot: str,
    found: str,
    expected: str,
) -> None:
    shutil.copytree(artifacts[0], tmp_path / "classifier-copy")
    classifier_dir = tmp_path / slots[0]
    ner_dir = tmp_path / slots[1] if slots[1] else None
    loads: list[Path] = []

    with pytest.raises(ModelSlotError) as raised:
        ReloadingModels(classifier_dir, ner_dir, _counting_loader(loads))

    message = str(raised.value)
    assert f"the {slot} slot needs a {expected}" in message
    assert f"a {found} model" in message
    misplaced = ner_dir if slot == "NER" else classifier_dir
    assert str(misplaced) in message
    assert all(path != misplaced for path in loads), "refused before the model is loaded"


def test_a_classify_and_tag_artifact_fits_either_slot(
    artifacts: tuple[Path, Path], tiny_multitask_artifact: Path
) -> None:
    as_classifier = ReloadingModels(tiny_multitask_artifact, artifacts[1], load_predictor)
    as_ner = ReloadingModels(artifacts[0], tiny_multitask_artifact, load_predictor)

    assert as_classifier().classifier.manifest.task is TaskKind.CLASSIFY_AND_TAG
    ner = as_ner().ner
    assert ner is not None and ner.manifest.task is TaskKind.CLASSIFY_AND_TAG
