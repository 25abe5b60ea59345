"""Several workers in one consumer group on the real broker: joins and crashes lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Callable

import pytest

from stream.config import BrokerSettings, TopicSettings
from stream.inputs import to_outbound
from stream.samples import sample_records
from stream.topics import ensure_topics, produce
from tests.stream.conftest import WorkerProcess
from tests.stream.test_worker_integration import _send_paced, _stop
from tests.stream.watch import Watcher, at_least, read_outputs

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]


def _json_lines(log: str) -> list[dict[str, object]]:
    out = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            parsed = json.loads(line)
            if isinstance(parsed, dict):
                out.append(parsed)
    return out


async def _assigned(worker: WorkerProcess, timeout_s: float = 60.0) -> None:
    """Wait until `worker` has been given partitions by the group."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not any(
        line.get("event") == "worker.assigned" and line.get("partitions")
        for line in _json_lines(worker.log())
    ):
        if worker.proc.poll() is not None:
            pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log()[-3000:]}")
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"the worker was never assigned partitions:\n{worker.log()[-3000:]}")
        await asyncio.sleep(0.2)


async def test_workers_joining_and_crashing_mid_stream_route_every_message_at_least_once(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: StartWorker,
    record_property: Callable[[str, object], None],
) -> None:
    topics = unique_topics.model_copy(update={"partitions": 6})
    env = {**worker_env, **topics.as_env()}
    records = list(sample_records(3000, malformed_ratio=0.05, seed=31, id_prefix="scale"))
    ids = {r.key for r in records}
    await ensure_topics(broker_settings, topics.all_topics(), topics.partitions)

    async with Watcher(broker_settings, topics) as watcher:
        first = start_worker(env)
        await produce(broker_settings, to_outbound(records[:50], topics))
        await watcher.wait_until(at_least(50), first)
        # About 30 s of traffic: both joins and the kill land while it flows.
        sending = asyncio.create_task(_send_paced(broker_settings, topics, records[50:], 100.0))

        await watcher.wait_until(at_least(200), first)
        second = start_worker(env)  # joins mid-stream: the group rebalances
        await _assigned(second)
        third = start_worker(env)
        await _assigned(third)
        assert not sending.done(), "the stream ended before the kill; send for longer"
        first.signal(signal.SIGKILL)  # its partitions move to the others after the session
        assert await asyncio.to_thread(first.wait, 30.0) == -signal.SIGKILL
        killed_at = len(watcher.snapshot().seen())
        await sending

        await watcher.wait_until(lambda o: o.seen() >= ids, second, timeout_s=180)
    assert await _stop(second) == 0
    assert await _stop(third) == 0
    out = await read_outputs(broker_settings, topics)

    assert out.seen() == ids, "every message is routed or dead-lettered"
    duplicates = out.duplicates()
    print(f"\n3 workers, 6 partitions, one killed at {killed_at} of {len(ids)}: {duplicates} dup")
    record_property("duplicates_after_scale_out", duplicates)
    assert duplicates < len(ids), "duplicates are redone work, never a replay of everything"
