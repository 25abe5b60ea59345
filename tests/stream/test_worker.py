"""Worker start-up: bad rules or models stop it at once with a message that says what to do."""

from __future__ import annotations

import gc
import shutil
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

from schemas.artifact import read_manifest, write_manifest
from schemas.errors import ManifestMissing
from stream.config import BrokerSettings, WorkerSettings
from stream.errors import ModelSlotError, RulesInvalidError
from stream.heap import freeze_startup_objects
from stream.worker import build_worker


def _settings(tmp_path: Path, classifier: Path, rules: str | None) -> WorkerSettings:
    rules_path = None
    if rules is not None:
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(rules, encoding="utf-8")
    # Nothing listens on port 9: start-up checks must fail before any Kafka connection.
    return WorkerSettings(
        broker=BrokerSettings(bootstrap_servers="127.0.0.1:9"),
        classifier_dir=classifier,
        ner_dir=None,
        rules_path=rules_path,
        data_dir=tmp_path / "faust",
    )


def test_an_invalid_rules_file_stops_the_worker_before_it_connects(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    settings = _settings(tmp_path, tiny_classifier_artifact, "default_queue: [oops")
    with pytest.raises(RulesInvalidError, match="not valid YAML"):
        build_worker(settings)


def test_rules_that_map_labels_the_classifier_lacks_stop_the_worker(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    settings = _settings(
        tmp_path, tiny_classifier_artifact, "default_queue: q\ncategories: {Weather: w}\n"
    )
    with pytest.raises(RulesInvalidError, match=r"\['Weather'\]"):
        build_worker(settings)


def test_a_missing_classifier_says_how_to_get_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path, tmp_path / "no-model", None)
    with pytest.raises(ManifestMissing, match="textroute train"):
        build_worker(settings)


def test_a_valid_setup_builds_an_app_named_after_the_consumer_group(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    settings = _settings(tmp_path, tiny_classifier_artifact, None)
    built = build_worker(settings)
    try:
        assert built.app.conf.id == settings.app_id
        assert built.app.conf.broker_session_timeout == 10.0
        assert built.app.conf.broker_heartbeat_interval == 1.0
        assert built.models.versions() == {"default/classifier": "20250101T000000Z"}
    finally:
        built.close()


def test_the_worker_command_prints_one_error_line_and_exits_2(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("default_queue: 'no spaces allowed'\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "stream", "worker", "--rules", str(rules), "--no-ner"],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"},
    )
    assert done.returncode == 2
    assert "RulesInvalidError" in done.stderr and "default_queue" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_ner_model_in_the_classifier_slot_stops_the_worker_before_it_connects(
    tmp_path: Path, tiny_ner_artifact: Path
) -> None:
    settings = _settings(tmp_path, tiny_ner_artifact, None)
    with pytest.raises(ModelSlotError, match="the classifier slot needs a classification"):
        build_worker(settings)


def test_the_worker_command_refuses_an_ner_model_as_classifier_in_one_line(
    tmp_path: Path, tiny_ner_artifact: Path
) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        # Wide enough that the error, paths and all, is never wrapped.
        "COLUMNS": "2000",
        "TEXTROUTE_WORKER_CLASSIFIER_DIR": str(tiny_ner_artifact),
        "TEXTROUTE_WORKER_NER_DIR": "",
        "TEXTROUTE_WORKER_DATA_DIR": str(tmp_path / "faust"),
        # Nothing listens on port 9: a worker that got as far as Kafka would hang, not exit 2.
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": "127.0.0.1:9",
    }
    done = subprocess.run(
        [sys.executable, "-m", "stream", "worker"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )

    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: ModelSlotError: the classifier slot needs a classification")
    assert f"{tiny_ner_artifact} holds tiny-ner" in line and "token-classification" in line
    assert "Traceback" not in done.stdout + done.stderr


def test_a_hot_reload_frees_the_replaced_models_and_freezes_the_new_ones_out_of_full_collections(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    live = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_artifact, live)
    built = build_worker(_settings(tmp_path, live, None))
    gc.unfreeze()
    try:
        (pipeline,) = built.models
        replaced = weakref.ref(pipeline.models().classifier)
        # As run_worker does once the models are in.
        freeze_startup_objects()
        manifest = read_manifest(live)
        write_manifest(manifest.model_copy(update={"version": "20990101T000000Z"}), live)
        assert built.reload() == ["default/classifier"]
        assert built.models.versions() == {"default/classifier": "20990101T000000Z"}
        assert replaced() is None
        # Frozen objects are not among those a full collection walks (short pauses, as at start).
        new = pipeline.models().classifier
        assert not any(o is new for o in gc.get_objects())
    finally:
        gc.unfreeze()
        built.close()
