"""Readiness and model lifecycle: loading in the background, load failures, no NER, hot reload."""

from __future__ import annotations

import gc
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.artifact import read_manifest, write_manifest
from stream.models import inference_loader
from tests.stream.api.conftest import StartApi, wait_ready

pytestmark = pytest.mark.integration

BODY = {"text": "the team won the cup"}


def test_readyz_is_503_while_loading_and_200_once_the_models_are_in(
    start_api: StartApi,
) -> None:
    gate = threading.Event()
    real = inference_loader()

    def gated(path: Path) -> Any:
        # The real loader, held back until the test has seen the server answer while loading.
        gate.wait(timeout=60)
        return real(path)

    server = start_api(loader=gated)
    try:
        before = httpx.get(f"{server.url}/readyz", timeout=10)
        assert before.status_code == 503
        assert before.json() == {"status": "loading", "models": {}, "error": None}
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200

        early = httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=10)
        assert early.status_code == 503
        assert early.json()["error"]["code"] == "not_ready"
        assert "still loading" in early.json()["error"]["message"]
        assert early.headers["retry-after"] == "5"
    finally:
        gate.set()

    after = wait_ready(server.url)
    assert after.status_code == 200
    assert after.json()["models"]["classifier"]["name"] == "tiny-topics"
    assert after.json()["models"]["ner"]["name"] == "tiny-ner"
    assert httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30).status_code == 200


def test_what_is_alive_once_the_models_are_in_is_frozen_out_of_full_collections(
    start_api: StartApi,
) -> None:
    gc.unfreeze()
    try:
        server = start_api()
        assert wait_ready(server.url).status_code == 200
        # Full collections would otherwise walk every object of the loaded models each time.
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_corrupt_model_file_fails_readiness_with_the_reason(
    start_api: StartApi, tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_artifact, broken)
    onnx = broken / "model.int8.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-16] + b"\0" * 16)

    server = start_api(classifier=broken)
    ready = wait_ready(server.url)
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "failed"
    assert "ChecksumMismatch" in body["error"]
    assert "model.int8.onnx" in body["error"]

    refused = httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=10)
    assert refused.status_code == 503
    assert "failed to load" in refused.json()["error"]["message"]
    assert "Traceback" not in refused.text


def test_missing_artifact_directory_fails_readiness(start_api: StartApi, tmp_path: Path) -> None:
    server = start_api(classifier=tmp_path / "nowhere")
    body = wait_ready(server.url).json()
    assert body["status"] == "failed"
    assert "not a textroute model artifact" in body["error"]


def test_rules_naming_unknown_labels_fail_readiness(start_api: StartApi, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\ndefault_queue: triage\ncategories:\n  Weather: desk.weather\n")
    server = start_api(rules_path=rules)
    body = wait_ready(server.url).json()
    assert body["status"] == "failed"
    assert "Weather" in body["error"]


def test_without_ner_entities_is_404_and_route_still_works(start_api: StartApi) -> None:
    server = start_api(ner=None)
    ready = wait_ready(server.url)
    assert ready.status_code == 200
    assert set(ready.json()["models"]) == {"classifier"}

    entities = httpx.post(f"{server.url}/v1/entities", json=BODY, timeout=10)
    assert entities.status_code == 404
    assert entities.json()["error"]["code"] == "model_not_configured"

    routed = httpx.post(f"{server.url}/v1/route", json={**BODY, "kind": "article"}, timeout=30)
    assert routed.status_code == 200, routed.text
    routing = routed.json()["results"][0]["routing"]
    assert routing["entities"] == [] and routing["ner"] is None


def test_a_new_artifact_version_is_served_without_a_restart_and_frozen_like_the_first(
    start_api: StartApi, tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    live = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_artifact, live)
    gc.unfreeze()
    try:
        _serve_a_new_version(start_api, live)
    finally:
        gc.unfreeze()


def _serve_a_new_version(start_api: StartApi, live: Path) -> None:
    real = inference_loader()
    loaded: list[Any] = []

    def load(path: Path) -> Any:
        loaded.append(real(path))
        return loaded[-1]

    server = start_api(classifier=live, ner=None, reload_interval_s=0.2, loader=load)
    wait_ready(server.url)
    first = httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30).json()
    assert first["model"]["version"] == "20250101T000000Z"

    manifest = read_manifest(live)
    write_manifest(manifest.model_copy(update={"version": "20990101T000000Z"}), live)

    deadline = time.monotonic() + 20
    version = first["model"]["version"]
    while version != "20990101T000000Z" and time.monotonic() < deadline:
        time.sleep(0.1)
        version = httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30).json()["model"][
            "version"
        ]
    assert version == "20990101T000000Z"
    assert httpx.get(f"{server.url}/readyz").json()["models"]["classifier"]["version"] == version
    # Refrozen after the swap: the new model is out of full collections too (short pauses),
    # and what cycles held of the replaced one is freed (see stream.heap.refreeze).
    new = loaded[-1]
    assert new.manifest.version == version
    # The new version is served as soon as it is swapped in, before the refreeze after it.
    deadline = time.monotonic() + 20
    while any(o is new for o in gc.get_objects()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(o is new for o in gc.get_objects())
