"""The review service on the real broker: archive records and feedback in, joined rows in the
store, unusable feedback dead-lettered, offsets committed, nothing read twice after a restart."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from schemas.events import DeadLetter, DeadLetterReason, ModelRef
from schemas.feedback import ArchivedMessage
from schemas.messages import MessageKind
from stream.config import BrokerSettings, TopicSettings, WorkerSettings
from stream.metrics import StreamMetrics
from stream.review_service import ReviewService, review_group
from stream.review_store import ReviewStore, write_dataset
from stream.topics import OutboundRecord, ensure_topics, produce, read_topics, worker_topic_limits

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc)
LABELS = {"ticket": {"billing", "tech", "sales"}}


def archive(topics: TopicSettings, message_id: str, category: str = "billing") -> OutboundRecord:
    message = ArchivedMessage(
        message_id=message_id,
        kind=MessageKind.TICKET,
        pipeline="ticket",
        text=f"the text of {message_id}",
        category=category,
        confidence=0.8,
        route=f"desk.{category}",
        review=False,
        classifier=ModelRef(name="tickets", version="v1"),
        routed_at=NOW,
    )
    return OutboundRecord(topics.archive, message_id.encode(), message.model_dump_json().encode())


def feedback(topics: TopicSettings, message_id: str, **fields: Any) -> OutboundRecord:
    body = {"message_id": message_id, "reviewer": "ana", "reviewed_at": NOW.isoformat(), **fields}
    return OutboundRecord(topics.feedback, message_id.encode(), json.dumps(body).encode())


def raw_feedback(topics: TopicSettings, key: bytes, value: bytes) -> OutboundRecord:
    return OutboundRecord(topics.feedback, key, value)


@contextlib.asynccontextmanager
async def running(service: ReviewService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.run())
    try:
        await asyncio.wait_for(service.ready.wait(), timeout=60)
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def dead_letters(broker: BrokerSettings, topics: TopicSettings) -> list[DeadLetter]:
    records = await read_topics(broker, [topics.dead_letter], idle_s=0.5)
    return [DeadLetter.model_validate_json(r.value or b"") for r in records]


async def committed(broker: BrokerSettings, group: str, topic: str, parts: int) -> list[int]:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        group_id=group, enable_auto_commit=False, **broker.aiokafka_kwargs()
    )
    await consumer.start()
    try:
        return [await consumer.committed(TopicPartition(topic, p)) or 0 for p in range(parts)]
    finally:
        await consumer.stop()


async def test_the_service_joins_feedback_and_dead_letters_what_it_cannot_use(
    broker_settings: BrokerSettings, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    topics = unique_topics
    settings = WorkerSettings(
        broker=broker_settings,
        topics=topics,
        app_id=f"{topics.email.split('.')[0]}-router",
        data_dir=tmp_path,
        feedback_wait_s=2.0,
    )
    await ensure_topics(
        broker_settings, topics.all_topics(), topics.partitions,
        configs=worker_topic_limits(settings),
    )  # fmt: skip
    bad_utf8 = b'{"message_id": "\xff"}'
    await produce(
        broker_settings,
        [
            archive(topics, "m1"),
            archive(topics, "m2"),
            feedback(topics, "m1", label="billing"),
            feedback(topics, "m2", label="sales", comment="a refund, not a bill"),
            feedback(topics, "m3", routing_correct=True),  # archived only later
            feedback(topics, "m4", label="tech"),  # never archived
            feedback(topics, "m2b", label="Sports"),  # a label the pipeline lacks
            archive(topics, "m2b"),
            raw_feedback(topics, b"x1", bad_utf8),
            raw_feedback(topics, b"x2", b"{not json"),
            raw_feedback(topics, b"m5", b'{"message_id": "m5", "reviewer": "ana"}'),
        ],
    )
    metrics = StreamMetrics(CollectorRegistry())
    service = ReviewService(settings, metrics, labels_of=LABELS.get, expire_interval_s=0.2)
    path = settings.review_store_file()

    async with running(service):
        await asyncio.sleep(0.3)
        await produce(broker_settings, [archive(topics, "m3", category="tech")])
        # Read as `textroute feedback dataset` does: another connection, while the service writes.
        reader = ReviewStore(path, create=False)
        rows = await eventually(lambda: len(reader.joined()) == 3 and reader.joined(), "joins")
        dead = await _wait_dead(broker_settings, topics, 5)

    by_id = {r.feedback.message_id: r for r in rows}
    assert {k: (v.label, v.agrees) for k, v in by_id.items()} == {
        "m1": ("billing", True),
        "m2": ("sales", False),
        "m3": ("tech", True),
    }
    out = tmp_path / "reviewed.csv"
    assert write_dataset(rows, out) == 3
    assert "the text of m2,sales" in out.read_text(encoding="utf-8")

    reasons = {d.message_id or d.source.offset: d.reason for d in dead}
    assert sorted(d.reason.value for d in dead) == sorted(
        ["not_utf8", "invalid_json", "schema_error", "unknown_label", "unknown_message"]
    )
    assert reasons["m4"] is DeadLetterReason.UNKNOWN_MESSAGE
    assert reasons["m2b"] is DeadLetterReason.UNKNOWN_LABEL
    assert reasons["m5"] is DeadLetterReason.SCHEMA_ERROR
    for d in dead:
        assert d.source.topic == topics.feedback
    [utf8] = [d for d in dead if d.reason is DeadLetterReason.NOT_UTF8]
    assert base64.b64decode(utf8.payload_b64) == bad_utf8
    [unknown] = [d for d in dead if d.reason is DeadLetterReason.UNKNOWN_MESSAGE]
    assert json.loads(base64.b64decode(unknown.payload_b64))["message_id"] == "m4"
    assert reader.pending_count() == 0
    sample = metrics.registry.get_sample_value
    assert sample("textroute_feedback_total", {"pipeline": "ticket", "verdict": "agree"}) == 2
    assert sample("textroute_feedback_total", {"pipeline": "ticket", "verdict": "corrected"}) == 1

    # Every record read is committed for the review group, and a restart reads none again.
    ends = await read_topics(broker_settings, [topics.feedback], idle_s=0.3)
    expected = [0] * topics.partitions
    for r in ends:
        expected[r.partition] = max(expected[r.partition], r.offset + 1)
    group = review_group(settings.app_id)
    assert await committed(broker_settings, group, topics.feedback, topics.partitions) == expected
    again = ReviewService(settings, StreamMetrics(CollectorRegistry()), expire_interval_s=0.2)
    async with running(again):
        await asyncio.sleep(3.0)
    assert len(await dead_letters(broker_settings, topics)) == 5
    assert len(reader.joined()) == 3
    reader.close()


async def _wait_dead(broker: BrokerSettings, topics: TopicSettings, n: int) -> list[DeadLetter]:
    deadline = time.monotonic() + 60
    while True:
        dead = await dead_letters(broker, topics)
        if len(dead) >= n:
            return dead
        if time.monotonic() > deadline:
            pytest.fail(f"{len(dead)} dead letters, not {n}: {[d.reason for d in dead]}")
        await asyncio.sleep(0.2)


async def test_the_worker_keeps_the_review_store_of_what_it_routed(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: Callable[..., Any],
    tmp_path: Path,
) -> None:
    """The worker's own review service (on by default): routed messages are archived, and
    feedback sent afterwards is joined with the text the classifier read."""
    from stream.inputs import to_outbound
    from stream.samples import sample_records

    topics = unique_topics
    env = {**worker_env, "TEXTROUTE_WORKER_FEEDBACK_WAIT_S": "3"}
    records = list(sample_records(6, malformed_ratio=0.0, seed=3, id_prefix="rv"))
    await ensure_topics(broker_settings, topics.all_topics(), topics.partitions)
    worker = start_worker(env)
    try:
        await produce(broker_settings, to_outbound(records, topics))
        store_path = Path(env["TEXTROUTE_WORKER_DATA_DIR"]) / "review.sqlite"
        await eventually(lambda: store_path.exists(), "the review store file", 120)
        store = ReviewStore(store_path, create=False)
        await eventually(lambda: store.archived_count() == 6, "six archived messages", 120)
        await produce(
            broker_settings,
            [
                feedback(topics, "rv-000000", label="Sports"),
                feedback(topics, "rv-000001", routing_correct=True),
                feedback(topics, "nowhere", label="World"),
                # A label the worker's classifier does not have: checked against the models
                # the worker runs (labels_of), so it cannot join.
                feedback(topics, "rv-000002", label="Gossip"),
            ],
        )
        rows = await eventually(lambda: len(store.joined()) == 2 and store.joined(), "joins")
        dead = await _wait_dead(broker_settings, topics, 2)
        assert worker.proc.poll() is None, worker.log()[-3000:]
    finally:
        worker.stop()
    by_id = {r.feedback.message_id: r for r in rows}
    assert by_id["rv-000000"].label == "Sports"
    assert by_id["rv-000001"].label == by_id["rv-000001"].message.category
    assert all(r.message.text for r in rows)
    assert sorted(
        (d.reason.value, d.message_id) for d in dead if d.source.topic == topics.feedback
    ) == [("unknown_label", "rv-000002"), ("unknown_message", "nowhere")]
    store.close()
