"""A running worker pointed at a model home's `current` on the real tansu broker: a promotion is
picked up without a restart, a candidate that fails a gate never reaches it."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas.artifact import read_manifest, write_manifest
from stream.config import BrokerSettings, TopicSettings
from stream.inputs import to_outbound
from stream.model_home import ModelHome
from stream.promotion import GateOptions, promote
from stream.samples import SampleRecord, sample_records
from stream.topics import ensure_topics, produce
from tests.stream.conftest import WorkerProcess
from tests.stream.watch import Outputs, Watcher, at_least
from training.tiny import TOPICS, build_tiny_classifier, topic_texts, write_topics_csv

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]


def _with_version(source: Path, out: Path, version: str) -> Path:
    shutil.copytree(source, out)
    manifest = read_manifest(out, verify=False)
    write_manifest(manifest.model_copy(update={"version": version}), out)
    return out


@pytest.fixture(scope="module")
def weak_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny classifier trained for 3 steps instead of 60 (it answers one topic for every
    text: 25% accuracy), exported to ONNX under parity gates loose enough to pass, so only the
    test-set gate can stop it."""
    from training.export import EvalSample, GateSettings, export_artifact

    out = tmp_path_factory.mktemp("weak") / "weak-classifier"
    build_tiny_classifier(out, steps=3)
    texts, labels = topic_texts(128, seed=2)
    export_artifact(
        out,
        eval_data=EvalSample.from_labelled(texts, labels, TOPICS),
        gates=GateSettings(min_argmax_agreement=0.0, max_accuracy_drop=100.0, max_logit_diff=1.0),
    )
    manifest = read_manifest(out, verify=False)
    write_manifest(manifest.model_copy(update={"version": "weak-1"}), out)
    return out


@pytest.fixture
def home(tmp_path: Path, tiny_classifier_artifact: Path) -> ModelHome:
    """A model home whose active version, v1, is the tiny classifier."""
    home = ModelHome(tmp_path / "home")
    v1 = _with_version(tiny_classifier_artifact, tmp_path / "v1", "v1")
    promote(v1, home, GateOptions())
    assert home.active_version() == "v1"
    return home


@pytest.fixture
def test_csv(tmp_path: Path) -> Path:
    return write_topics_csv(tmp_path / "test.csv", 200, seed=9)


def _promote_cli(candidate: Path, home: ModelHome, test: Path) -> subprocess.CompletedProcess[str]:
    """`python -m stream promote` (the command `textroute promote` runs)."""
    env = {**os.environ, "COLUMNS": "300"}
    env.pop("TEXTROUTE_VERBOSE", None)
    command = [sys.executable, "-m", "stream", "promote", str(candidate)]
    return subprocess.run(
        [*command, "--home", str(home.root), "--test", str(test)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _start(
    broker: BrokerSettings,
    topics: TopicSettings,
    env: dict[str, str],
    home: ModelHome,
    start_worker: StartWorker,
    watcher: Watcher,
    records: list[SampleRecord],
) -> WorkerProcess:
    """A worker on HOME/current, reloading every half second, that has routed 10 messages."""
    worker = start_worker(
        {
            **env,
            "TEXTROUTE_WORKER_CLASSIFIER_DIR": str(home.current_link),
            "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0.5",
        }
    )
    await produce(broker, to_outbound(records[:10], topics))
    await watcher.wait_until(at_least(10), worker)
    return worker


async def _stop(worker: WorkerProcess) -> int:
    import signal

    worker.signal(signal.SIGTERM)
    return await asyncio.to_thread(worker.wait, 60.0)


def _versions(outputs: Outputs) -> list[str]:
    return [e.classifier.version for e in sorted(outputs.events, key=lambda e: e.routed_at)]


async def test_a_running_worker_picks_up_a_promotion_without_a_restart(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    home: ModelHome,
    tiny_classifier_artifact: Path,
    test_csv: Path,
    tmp_path: Path,
) -> None:
    records = list(sample_records(300, malformed_ratio=0.0, seed=31, id_prefix="promo"))
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)
    v2 = _with_version(tiny_classifier_artifact, tmp_path / "v2", "v2")

    async with Watcher(broker_settings, unique_topics) as watcher:
        worker = await _start(
            broker_settings, unique_topics, worker_env, home, start_worker, watcher, records
        )
        assert set(_versions(watcher.snapshot())) == {"v1"}

        done = await asyncio.to_thread(_promote_cli, v2, home, test_csv)
        assert done.returncode == 0, done.stdout + done.stderr
        assert home.active_version() == "v2"

        # Trickle messages in until one is routed by the promoted version.
        sent = 10
        while sent < len(records) and "v2" not in _versions(watcher.snapshot()):
            await produce(broker_settings, to_outbound(records[sent : sent + 10], unique_topics))
            sent += 10
            await watcher.wait_until(at_least(sent), worker)
        out = watcher.snapshot()
    assert await _stop(worker) == 0

    versions = _versions(out)
    assert "v2" in versions, f"the worker kept v1:\n{worker.log()[-3000:]}"
    first_new = versions.index("v2")
    assert versions[:first_new] == ["v1"] * first_new
    assert versions[first_new:] == ["v2"] * (len(versions) - first_new)
    assert out.duplicates() == 0
    assert "models.reload_failed" not in worker.log()


async def test_a_candidate_that_fails_a_gate_never_reaches_the_running_worker(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    home: ModelHome,
    weak_classifier: Path,
    test_csv: Path,
) -> None:
    records = list(sample_records(60, malformed_ratio=0.0, seed=32, id_prefix="gated"))
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)
    history = home.history_path.read_text(encoding="utf-8")

    async with Watcher(broker_settings, unique_topics) as watcher:
        worker = await _start(
            broker_settings, unique_topics, worker_env, home, start_worker, watcher, records
        )

        done = await asyncio.to_thread(_promote_cli, weak_classifier, home, test_csv)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "not promoted: the test set gate failed" in done.stderr
        assert "points below the active model's" in done.stderr

        # Several reload intervals pass while the rest is routed.
        for start in range(10, len(records), 10):
            await produce(broker_settings, to_outbound(records[start : start + 10], unique_topics))
            await watcher.wait_until(at_least(start + 10), worker)
            await asyncio.sleep(0.3)
        out = watcher.snapshot()
    assert await _stop(worker) == 0

    assert str(home.current_link.readlink()) == "versions/v1"
    assert sorted(p.name for p in home.versions_dir.iterdir()) == ["v1"], "nothing installed"
    assert home.history_path.read_text(encoding="utf-8") == history
    assert len(out.events) == len(records)
    assert set(_versions(out)) == {"v1"}
    assert "models.reloaded" not in worker.log()
