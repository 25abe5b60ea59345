"""Watching a worker from outside: its outputs by message id, and its group's commits."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import pytest

from schemas.events import DeadLetter, RoutingEvent
from stream.config import BrokerSettings, TopicSettings
from stream.topics import ReadRecord, TopicFollower, read_topics
from stream.view import decode_outputs, origin_id
from tests.stream.conftest import WorkerProcess


class Outputs:
    """What the worker has written so far, indexed by the originating message id."""

    def __init__(self, records: list[ReadRecord], topics: TopicSettings) -> None:
        self.records = records
        events, dead, unknown = decode_outputs(records, topics.routed)
        assert unknown == [], "only the worker writes to the output topics"
        self.events: list[RoutingEvent] = events
        self.dead: list[DeadLetter] = dead
        self.routed_ids = Counter(e.message_id for e in events)
        self.dead_ids = Counter(origin_id(d) for d in dead)

    def seen(self) -> set[str | None]:
        return set(self.routed_ids) | set(self.dead_ids)

    def duplicates(self) -> int:
        return sum(n - 1 for n in (self.routed_ids + self.dead_ids).values())


async def read_outputs(broker: BrokerSettings, topics: TopicSettings) -> Outputs:
    records = await read_topics(broker, [topics.routed, topics.dead_letter], idle_s=0.5)
    return Outputs(records, topics)


def at_least(n: int) -> Callable[[Outputs], bool]:
    """Done when `n` distinct messages have an output."""
    return lambda outputs: len(outputs.seen()) >= n


class Watcher(TopicFollower):
    """Follows the output topics in the background; a snapshot never waits for a quiet topic,
    so it works while the stream is still flowing."""

    def __init__(self, broker: BrokerSettings, topics: TopicSettings) -> None:
        super().__init__(broker, [topics.routed, topics.dead_letter])
        self.settings = topics

    def snapshot(self) -> Outputs:
        return Outputs(list(self.records), self.settings)

    async def wait_until(
        self, done: Callable[[Outputs], bool], worker: WorkerProcess, timeout_s: float = 90.0
    ) -> Outputs:
        deadline = time.monotonic() + timeout_s
        while True:
            outputs = self.snapshot()
            if done(outputs):
                return outputs
            if worker.proc.poll() is not None:
                pytest.fail(f"worker exited with {worker.proc.returncode}:\n{worker.log()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"timed out, {len(outputs.seen())} ids seen:\n{worker.log()[-3000:]}")
            await asyncio.sleep(0.05)


async def committed_offsets(
    broker: BrokerSettings, group: str, topics: TopicSettings
) -> dict[tuple[str, int], int]:
    """The consumer group's committed offset of each inbound partition it has committed.

    Asked by a consumer of the group that never joins it (tansu's answer to the admin client's
    OffsetFetch version does not decode)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        group_id=group, enable_auto_commit=False, **broker.aiokafka_kwargs()
    )
    await consumer.start()
    try:
        out: dict[tuple[str, int], int] = {}
        for topic in topics.inbound():
            for partition in range(topics.partitions):
                offset = await consumer.committed(TopicPartition(topic, partition))
                if offset is not None and offset >= 0:
                    out[(topic, partition)] = offset
        return out
    finally:
        await consumer.stop()
