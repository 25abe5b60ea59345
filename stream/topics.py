"""Kafka plumbing shared by the commands, the demo and the bench: topics, producing, reading."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from stream.config import BrokerSettings, TopicSettings, WorkerSettings
from stream.errors import BrokerUnavailableError

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


@dataclass(frozen=True)
class OutboundRecord:
    """One record to produce."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass(frozen=True)
class ReadRecord:
    """One record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int


def _unavailable(broker: BrokerSettings, exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError(
        f"no Kafka broker answered at {broker.bootstrap_servers} ({type(exc).__name__}: {exc}); "
        "start one with `textroute broker` or set TEXTROUTE_BROKER_BOOTSTRAP_SERVERS."
    )


#: Room for a record batch's header and a record's framing around its key and value.
RECORD_OVERHEAD_BYTES = 16 * 1024


def topic_limits(
    topics: TopicSettings, *, max_message_bytes: int, max_output_bytes: int
) -> dict[str, dict[str, str]]:
    """Each topic's `max.message.bytes`, consistent with the worker's limits: inbound records
    up to what it routes, outputs up to what it produces (its producer's max_request_size)."""
    inbound = str(max_message_bytes + RECORD_OVERHEAD_BYTES)
    outbound = str(max_output_bytes + RECORD_OVERHEAD_BYTES)
    limits = {name: {"max.message.bytes": inbound} for name in topics.inbound()}
    for name in (topics.routed, topics.dead_letter, topics.shadow, topics.feedback):
        limits[name] = {"max.message.bytes": outbound}
    # One record per message id is all the join needs: compaction keeps the newest, and the
    # review store's retention bounds how long it is read back.
    limits[topics.archive] = {"max.message.bytes": outbound, "cleanup.policy": "compact"}
    return limits


def worker_topic_limits(settings: WorkerSettings) -> dict[str, dict[str, str]]:
    """`topic_limits` for a worker's settings."""
    return topic_limits(
        settings.topics,
        max_message_bytes=settings.max_message_bytes,
        max_output_bytes=settings.max_output_bytes,
    )


async def ensure_topics(
    broker: BrokerSettings,
    names: Iterable[str],
    partitions: int,
    replication: int = 1,
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
) -> None:
    """Create the topics that do not exist yet, each with its `configs` entry; existing ones
    are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(**broker.aiokafka_kwargs())
    try:
        await admin.start()
    except (KafkaError, OSError) as exc:
        raise _unavailable(broker, exc) from exc
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(names) if n not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(
                        n, partitions, replication, topic_configs=dict((configs or {}).get(n, {}))
                    )
                    for n in missing
                ]
            )
    finally:
        await admin.close()


@asynccontextmanager
async def producer(broker: BrokerSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A started aiokafka producer with acks=all, stopped (and flushed) on exit."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import KafkaError

    prod = AIOKafkaProducer(acks="all", linger_ms=5, **broker.aiokafka_kwargs())
    try:
        await prod.start()
    except (KafkaError, OSError) as exc:
        await prod.stop()
        raise _unavailable(broker, exc) from exc
    try:
        yield prod
    finally:
        await prod.stop()


async def produce(broker: BrokerSettings, records: Iterable[OutboundRecord]) -> int:
    """Send every record and wait until the broker has acknowledged all of them."""
    async with producer(broker) as prod:
        futures = [await prod.send(r.topic, r.value, key=r.key) for r in records]
        await asyncio.gather(*futures)
    return len(futures)


@asynccontextmanager
async def reader(
    broker: BrokerSettings,
    topics: Sequence[str],
    *,
    from_beginning: bool = True,
    fetch_max_wait_ms: int = 100,
) -> AsyncIterator[AIOKafkaConsumer]:
    """A group-less consumer assigned every partition of `topics`; nothing is committed.

    A short fetch wait keeps it prompt on tansu, which holds a fetch for its whole wait.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import KafkaError

    consumer = AIOKafkaConsumer(
        enable_auto_commit=False, fetch_max_wait_ms=fetch_max_wait_ms, **broker.aiokafka_kwargs()
    )
    try:
        await consumer.start()
    except (KafkaError, OSError) as exc:
        await consumer.stop()
        raise _unavailable(broker, exc) from exc
    try:
        await consumer.topics()  # loads metadata so the partitions of `topics` are known
        parts = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or {0})
        ]
        consumer.assign(parts)
        if from_beginning:
            await consumer.seek_to_beginning(*parts)
        else:
            await consumer.seek_to_end(*parts)
        yield consumer
    finally:
        await consumer.stop()


def to_records(batch: Mapping[Any, Sequence[Any]]) -> list[ReadRecord]:
    """ReadRecords of one `getmany()` result of an aiokafka consumer."""
    return [
        ReadRecord(tp.topic, tp.partition, m.offset, m.key, m.value, m.timestamp)
        for tp, msgs in batch.items()
        for m in msgs
    ]


async def read_topics(
    broker: BrokerSettings, topics: Sequence[str], *, idle_s: float = 2.0
) -> list[ReadRecord]:
    """Every record now in `topics`, read until nothing new arrives for `idle_s` seconds."""
    out: list[ReadRecord] = []
    async with reader(broker, topics) as consumer:
        while batch := await consumer.getmany(timeout_ms=int(idle_s * 1000), max_records=10_000):
            out.extend(to_records(batch))
    return out


_Follower = TypeVar("_Follower", bound="TopicFollower")


class TopicFollower:
    """Reads `topics` from the beginning in a background task while the caller goes on,
    keeping each record with the time it arrived (time.perf_counter()).

    Unlike read_topics it never waits for the topics to go quiet, so it suits a stream that
    is still flowing. Use it as an async context manager.
    """

    def __init__(
        self, broker: BrokerSettings, topics: Sequence[str], *, fetch_max_wait_ms: int = 100
    ) -> None:
        self.broker = broker
        self.topics = list(topics)
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.records: list[ReadRecord] = []
        self.arrived: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self: _Follower) -> _Follower:
        self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _follow(self) -> None:
        wait = self.fetch_max_wait_ms
        async with reader(self.broker, self.topics, fetch_max_wait_ms=wait) as consumer:
            while True:
                records = to_records(await consumer.getmany(timeout_ms=max(wait, 50)))
                now = time.perf_counter()
                self.records.extend(records)
                self.arrived.extend(now for _ in records)


async def supports_idempotence(broker: BrokerSettings) -> bool:
    """Whether the broker grants producer ids (InitProducerId), which an idempotent producer
    needs: Apache Kafka does; the embedded tansu lists the request but answers it with an
    error. Raises BrokerUnavailableError when no broker answers."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaError
    from aiokafka.protocol.transaction import InitProducerIdRequest

    client = AIOKafkaClient(**broker.aiokafka_kwargs())
    try:
        await client.bootstrap()
        node = next(iter(client.cluster.brokers())).nodeId
        response = await client.send(node, InitProducerIdRequest(None, 60_000))
    except (KafkaError, OSError, StopIteration) as exc:
        if isinstance(exc, KafkaError) and client.cluster.brokers():
            return False  # a broker answered, but not with a producer id
        raise _unavailable(broker, exc) from exc
    finally:
        await client.close()
    return bool(response.error_code == 0 and response.producer_id >= 0)
