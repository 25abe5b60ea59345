"""The worker end to end on the real tansu broker: routing, dead letters, crashes, shutdown."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from schemas.events import RoutingEvent
from schemas.manifest import MANIFEST_FILE
from stream.broker import free_port
from stream.config import BrokerSettings, TopicSettings
from stream.inputs import to_outbound
from stream.samples import SampleRecord, sample_records
from stream.topics import (
    ensure_topics,
    produce,
    producer,
)
from stream.view import origin_id
from tests.stream.conftest import WorkerProcess
from tests.stream.watch import Outputs, Watcher, at_least, committed_offsets, read_outputs

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]


async def _send(broker: BrokerSettings, topics: TopicSettings, records: list[SampleRecord]) -> None:
    await ensure_topics(broker, topics.all_topics(), topics.partitions)
    await produce(broker, to_outbound(records, topics))


async def _send_paced(
    broker: BrokerSettings, topics: TopicSettings, records: list[SampleRecord], per_s: float
) -> None:
    """Send in small chunks over time, so a worker stopped meanwhile is stopped mid-stream."""
    outbound = to_outbound(records, topics)
    async with producer(broker) as prod:
        for start in range(0, len(outbound), 25):
            chunk = outbound[start : start + 25]
            futures = [await prod.send(r.topic, r.value, key=r.key) for r in chunk]
            await asyncio.gather(*futures)
            await asyncio.sleep(len(chunk) / per_s)


def _scrape(port: int) -> dict[str, float]:
    """Sum of each sample name on the worker's /metrics page, over all label values."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] = sums.get(sample.name, 0.0) + sample.value
    return sums


async def _stop(worker: WorkerProcess) -> int:
    worker.signal(signal.SIGTERM)
    return await asyncio.to_thread(worker.wait, 60.0)


async def _start_stream(
    broker: BrokerSettings,
    topics: TopicSettings,
    records: list[SampleRecord],
    worker: WorkerProcess,
    watcher: Watcher,
) -> asyncio.Task[None]:
    """Send the first 50 records and wait until the worker has routed them (it has joined the
    group), then keep sending the rest at 200 per second in the background."""
    await produce(broker, to_outbound(records[:50], topics))
    await watcher.wait_until(at_least(50), worker)
    return asyncio.create_task(_send_paced(broker, topics, records[50:], 200.0))


async def test_a_thousand_mixed_messages_are_all_routed_or_dead_lettered_once(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    record_property: Callable[[str, object], None],
) -> None:
    records = list(sample_records(1000, malformed_ratio=0.05, seed=11, id_prefix="mix"))
    valid = {r.key for r in records if r.expected_reason is None}
    malformed = {r.key: r.expected_reason for r in records if r.expected_reason is not None}
    assert 30 <= len(malformed) <= 70, "about 5% malformed, of every kind of damage"
    await _send(broker_settings, unique_topics, records)

    port = free_port()
    worker = start_worker({**worker_env, "TEXTROUTE_WORKER_METRICS_PORT": str(port)})
    async with Watcher(broker_settings, unique_topics) as watcher:
        await watcher.wait_until(lambda o: o.seen() >= valid | set(malformed), worker)
    metrics = await asyncio.to_thread(_scrape, port)
    for _ in range(50):  # the counters move right after the outputs are acknowledged
        if metrics.get("textroute_messages_in_total") == len(records):
            break
        await asyncio.sleep(0.1)
        metrics = await asyncio.to_thread(_scrape, port)
    assert await _stop(worker) == 0
    out = await read_outputs(broker_settings, unique_topics)

    assert metrics["textroute_messages_in_total"] == 1000
    assert metrics["textroute_messages_routed_total"] == len(valid)
    assert metrics["textroute_dead_letters_total"] == len(malformed)
    assert metrics["textroute_batch_size_count"] >= 1000 / 32
    assert metrics["textroute_end_to_end_seconds_count"] == len(valid)

    assert set(out.routed_ids) == valid
    assert {origin_id(d): d.reason for d in out.dead} == malformed
    assert out.duplicates() == 0, "an uninterrupted run writes each output once"
    for record in out.records:
        if record.topic == unique_topics.routed:
            event = RoutingEvent.model_validate_json(record.value or b"")
            assert record.key == event.message_id.encode(), "events are keyed by message id"
    record_property("routed", len(out.events))
    record_property("dead_letters", len(out.dead))


async def test_sigkill_after_a_commit_then_restart_loses_nothing_and_redoes_only_uncommitted_work(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    record_property: Callable[[str, object], None],
) -> None:
    records = list(sample_records(1000, malformed_ratio=0.05, seed=12, id_prefix="kill"))
    ids = {r.key for r in records}
    group = worker_env["TEXTROUTE_WORKER_APP_ID"]
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)

    async with Watcher(broker_settings, unique_topics) as watcher:
        first = start_worker(worker_env)
        sending = await _start_stream(broker_settings, unique_topics, records, first, watcher)
        await watcher.wait_until(at_least(150), first)
        # Kill once something is committed and some routed work is not yet: a kill before the
        # first commit redoes everything and would hide a worker that commits too early or
        # never; one while the worker is caught up and fully committed redoes nothing.
        deadline = time.monotonic() + 30
        while True:
            committed = sum(
                (await committed_offsets(broker_settings, group, unique_topics)).values()
            )
            if 0 < committed < len(watcher.snapshot().seen()):
                break
            assert time.monotonic() < deadline, "no commit with work beyond it in 30 s"
            await asyncio.sleep(0.05)
        first.signal(signal.SIGKILL)
        assert await asyncio.to_thread(first.wait, 30.0) == -signal.SIGKILL
        at_kill = await read_outputs(broker_settings, unique_topics)
        assert len(at_kill.seen()) < len(ids), "the kill must interrupt the stream"
        await sending

        second = start_worker(worker_env)
        await watcher.wait_until(lambda o: o.seen() >= ids, second)
    assert await _stop(second) == 0
    after = await read_outputs(broker_settings, unique_topics)

    assert after.seen() == ids, "every message is routed or dead-lettered after the restart"
    duplicates = after.duplicates()
    print(
        f"\nSIGKILL with {len(at_kill.seen())} of {len(ids)} messages done: "
        f"{duplicates} duplicate outputs after the restart, none missing"
    )
    record_property("duplicates_after_sigkill", duplicates)
    # Work done after the last commit is redone (at least once), work committed is not.
    assert 0 < duplicates < len(at_kill.seen())


def _last_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return lines[-1] if lines else ""


async def test_sigterm_finishes_the_batch_in_flight_commits_and_a_restart_redoes_nothing(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    records = list(sample_records(1000, seed=13, id_prefix="term"))
    ids = {r.key for r in records}
    # A classifier 0.5 s slower per batch: while the stream flows, a batch is in inference
    # nearly all the time, so the stop certainly lands on one.
    marks = tmp_path / "classify-marks.txt"
    slow_env = {
        **worker_env,
        "TEXTROUTE_TEST_SLOW_S": "0.5",
        "TEXTROUTE_TEST_SLOW_MARKS": str(marks),
    }
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)

    async with Watcher(broker_settings, unique_topics) as watcher:
        first = start_worker(slow_env, "tests.stream.slow_worker")
        sending = await _start_stream(broker_settings, unique_topics, records, first, watcher)
        await watcher.wait_until(at_least(150), first)
        while not _last_line(marks).startswith("start"):
            await asyncio.sleep(0.01)
        assert await _stop(first) == 0, first.log()[-3000:]
        assert _last_line(marks).startswith("end"), "the batch in inference was abandoned"
        at_stop = await read_outputs(broker_settings, unique_topics)
        assert len(at_stop.seen()) < len(ids), "the stop must interrupt the stream"
        await sending

        second = start_worker(worker_env)
        await watcher.wait_until(lambda o: o.seen() >= ids, second)
    assert await _stop(second) == 0
    after = await read_outputs(broker_settings, unique_topics)

    assert at_stop.duplicates() == 0
    assert after.seen() == ids
    assert after.duplicates() == 0, "a graceful stop commits everything it produced"


async def test_a_new_model_version_is_picked_up_without_a_restart(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    tiny_classifier_artifact: Path,
    tmp_path: Path,
) -> None:
    classifier = tmp_path / "live-classifier"
    shutil.copytree(tiny_classifier_artifact, classifier)
    env = {
        **worker_env,
        "TEXTROUTE_WORKER_CLASSIFIER_DIR": str(classifier),
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0.5",
    }
    records = list(sample_records(200, seed=14, id_prefix="live"))
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)

    async with Watcher(broker_settings, unique_topics) as watcher:
        worker = start_worker(env)
        await produce(broker_settings, to_outbound(records[:10], unique_topics))
        await watcher.wait_until(at_least(10), worker)

        manifest_path = classifier / MANIFEST_FILE
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["version"] = "20991231T000000Z"
        manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

        def reloaded(o: Outputs) -> bool:
            return any(e.classifier.version == "20991231T000000Z" for e in o.events)

        # Trickle messages in until one is routed by the new version.
        for start in range(10, len(records), 10):
            await produce(broker_settings, to_outbound(records[start : start + 10], unique_topics))
            await watcher.wait_until(at_least(start + 10), worker)
            if reloaded(watcher.snapshot()):
                break
        out = watcher.snapshot()
    assert await _stop(worker) == 0

    assert reloaded(out), "the worker kept the old model version"
    by_time = sorted(out.events, key=lambda e: e.routed_at)
    first_new = next(i for i, e in enumerate(by_time) if e.classifier.version == "20991231T000000Z")
    assert all(e.classifier.version == "20991231T000000Z" for e in by_time[first_new:])
    assert out.duplicates() == 0
