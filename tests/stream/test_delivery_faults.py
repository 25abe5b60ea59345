"""At least once under produce faults: a proxy between the worker and the broker holds or cuts
the worker's Produce requests, and no offset may be committed past an unacknowledged output."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker, free_port
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings
from stream.inputs import to_outbound
from stream.kafka_proxy import KafkaFaultProxy
from stream.samples import SampleRecord, sample_records
from stream.topics import ensure_topics, producer
from tests.stream.conftest import WorkerProcess
from tests.stream.watch import Outputs, Watcher, at_least, committed_offsets

pytestmark = pytest.mark.integration

StartWorker = Callable[[dict[str, str]], WorkerProcess]


@dataclass
class ProxiedBroker:
    """A tansu broker whose clients all reach it through a fault proxy."""

    broker: EmbeddedBroker
    proxy: KafkaFaultProxy

    @property
    def settings(self) -> BrokerSettings:
        return BrokerSettings(bootstrap_servers=self.broker.bootstrap)


@pytest.fixture
def proxied_broker(tmp_path: Path) -> Iterator[ProxiedBroker]:
    broker_port = free_port()
    with KafkaFaultProxy("127.0.0.1", broker_port) as proxy:
        settings = EmbeddedBrokerSettings(
            port=broker_port, advertised_port=proxy.port, log_file=tmp_path / "tansu.log"
        )
        with EmbeddedBroker(settings) as broker:
            yield ProxiedBroker(broker, proxy)


@pytest.fixture
def proxied_env(worker_env: dict[str, str], proxied_broker: ProxiedBroker) -> dict[str, str]:
    return {
        **worker_env,
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": proxied_broker.broker.bootstrap,
        "TEXTROUTE_WORKER_BATCH_SIZE": "32",
    }


#: (topic, partition, offset) of each input, by message id.
Offsets = dict[str, tuple[str, int, int]]


async def _send(
    broker: BrokerSettings, topics: TopicSettings, records: list[SampleRecord]
) -> Offsets:
    """Produce `records` and return where each one landed."""
    out = to_outbound(records, topics)
    async with producer(broker) as prod:
        futures = [await prod.send(r.topic, r.value, key=r.key) for r in out]
        metadata = await asyncio.gather(*futures)
    return {
        record.key: (m.topic, m.partition, m.offset)
        for record, m in zip(records, metadata, strict=True)
    }


def committed_without_output(
    committed: dict[tuple[str, int], int], offsets: Offsets, outputs: Outputs
) -> list[str]:
    """Ids of inputs below a committed offset whose output the broker does not have."""
    seen = outputs.seen()
    return sorted(
        message_id
        for message_id, (topic, partition, offset) in offsets.items()
        if offset < committed.get((topic, partition), 0) and message_id not in seen
    )


async def _running_worker(
    start_worker: StartWorker,
    env: dict[str, str],
    broker: BrokerSettings,
    topics: TopicSettings,
    records: list[SampleRecord],
    watcher: Watcher,
) -> tuple[WorkerProcess, Offsets]:
    """A worker started and seen routing `records` (it has joined the group), and where the
    records landed."""
    worker = start_worker(env)
    offsets = await _send(broker, topics, records)
    await watcher.wait_until(at_least(len(records)), worker)
    return worker, offsets


async def _restart_until_all_routed(
    start_worker: StartWorker, env: dict[str, str], offsets: Offsets, watcher: Watcher
) -> None:
    """Start a fresh worker, wait until every input of `offsets` has an output, stop it."""
    worker = start_worker(env)
    await watcher.wait_until(lambda o: o.seen() >= set(offsets), worker, timeout_s=120)
    worker.signal(signal.SIGTERM)
    assert await asyncio.to_thread(worker.wait, 60.0) == 0


async def _watch_commits(
    broker: BrokerSettings,
    group: str,
    topics: TopicSettings,
    offsets: Offsets,
    watcher: Watcher,
    seconds: float,
) -> list[str]:
    """Poll the group's committed offsets for `seconds`; the inputs found committed with no
    output, once the watcher has had time to catch up with what the broker holds."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        committed = await committed_offsets(broker, group, topics)
        suspects = committed_without_output(committed, offsets, watcher.snapshot())
        if suspects:
            await asyncio.sleep(0.5)  # the watcher reads with a 0.1 s fetch wait
            seen = watcher.snapshot().seen()
            confirmed = [s for s in suspects if s not in seen]
            if confirmed:
                return confirmed
        await asyncio.sleep(0.2)
    return []


async def test_no_offset_is_committed_past_an_output_the_broker_has_not_acknowledged(
    proxied_broker: ProxiedBroker,
    unique_topics: TopicSettings,
    proxied_env: dict[str, str],
    start_worker: StartWorker,
) -> None:
    broker, proxy = proxied_broker.settings, proxied_broker.proxy
    group = proxied_env["TEXTROUTE_WORKER_APP_ID"]
    records = list(sample_records(500, malformed_ratio=0.05, seed=21, id_prefix="held"))
    await ensure_topics(broker, unique_topics.all_topics(), unique_topics.partitions)

    async with Watcher(broker, unique_topics) as watcher:
        first, offsets = await _running_worker(
            start_worker, proxied_env, broker, unique_topics, records[:100], watcher
        )

        # The broker turns slow for the worker's producer: each of its Produce requests waits
        # 2 s in the proxy, while its fetches and offset commits flow on.
        proxy.delay(2.0, client_id_prefix=group)
        offsets |= await _send(broker, unique_topics, records[100:])
        violations = await _watch_commits(broker, group, unique_topics, offsets, watcher, 10.0)
        # Kill at once: whatever was committed without its output is now lost for good.
        first.signal(signal.SIGKILL)
        assert await asyncio.to_thread(first.wait, 30.0) == -signal.SIGKILL
        assert proxy.stats.delayed_requests > 0, "the worker's produce path was never slowed"
        assert violations == [], (
            f"{len(violations)} inputs were committed before the broker acknowledged their "
            f"output: {violations[:5]}"
        )
        proxy.delay(0)

        await _restart_until_all_routed(start_worker, proxied_env, offsets, watcher)


async def test_a_produce_that_fails_stops_the_worker_at_once_with_nothing_committed_past_it(
    proxied_broker: ProxiedBroker,
    unique_topics: TopicSettings,
    proxied_env: dict[str, str],
    start_worker: StartWorker,
) -> None:
    broker, proxy = proxied_broker.settings, proxied_broker.proxy
    group = proxied_env["TEXTROUTE_WORKER_APP_ID"]
    env = {**proxied_env, "TEXTROUTE_BROKER_PRODUCE_TIMEOUT_S": "3"}
    records = list(sample_records(300, seed=22, id_prefix="fail"))
    await ensure_topics(broker, unique_topics.all_topics(), unique_topics.partitions)

    async with Watcher(broker, unique_topics) as watcher:
        first, offsets = await _running_worker(
            start_worker, env, broker, unique_topics, records[:100], watcher
        )

        proxy.hold(client_id_prefix=group)
        # One batch only, then no more input: the failure must surface without a next batch.
        offsets |= await _send(broker, unique_topics, records[100:110])
        started = time.monotonic()
        code = await asyncio.to_thread(first.wait, 45.0)
        took = time.monotonic() - started
        assert code != 0, "a worker whose outputs were never acknowledged must exit non-zero"
        assert took < 30.0, f"the failure took {took:.0f} s to stop the worker"
        assert "worker.delivery_failed" in first.log()
        committed = await committed_offsets(broker, group, unique_topics)
        assert committed_without_output(committed, offsets, watcher.snapshot()) == []

        proxy.release()
        offsets |= await _send(broker, unique_topics, records[110:])
        await _restart_until_all_routed(start_worker, env, offsets, watcher)


async def test_sigterm_waits_for_outputs_in_flight_so_a_restart_redoes_nothing(
    proxied_broker: ProxiedBroker,
    unique_topics: TopicSettings,
    proxied_env: dict[str, str],
    start_worker: StartWorker,
) -> None:
    broker, proxy = proxied_broker.settings, proxied_broker.proxy
    group = proxied_env["TEXTROUTE_WORKER_APP_ID"]
    records = list(sample_records(300, seed=23, id_prefix="drain"))
    await ensure_topics(broker, unique_topics.all_topics(), unique_topics.partitions)

    async with Watcher(broker, unique_topics) as watcher:
        first, offsets = await _running_worker(
            start_worker, proxied_env, broker, unique_topics, records[:100], watcher
        )

        # A slow broker: each of the worker's Produce requests waits 3 s, so when the stop
        # comes a batch's outputs are certainly still on their way.
        proxy.delay(3.0, client_id_prefix=group)
        offsets |= await _send(broker, unique_topics, records[100:])
        deadline = time.monotonic() + 30
        while proxy.stats.delayed_requests == 0:
            assert time.monotonic() < deadline, "the worker never produced through the proxy"
            await asyncio.sleep(0.05)
        first.signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.wait, 90.0) == 0, first.log()[-3000:]
        proxy.delay(0)
        at_stop = watcher.snapshot()
        assert (
            committed_without_output(
                await committed_offsets(broker, group, unique_topics), offsets, at_stop
            )
            == []
        )

        await _restart_until_all_routed(start_worker, proxied_env, offsets, watcher)
        after = watcher.snapshot()
    assert after.duplicates() == 0, "a graceful stop commits every output it waited for"
