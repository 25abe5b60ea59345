"""The review service without a broker: what it dead-letters, and that a batch's offsets are
committed only after its dead letters are acknowledged."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from schemas.events import DeadLetter, DeadLetterReason, ModelRef
from schemas.feedback import ArchivedMessage
from schemas.messages import MessageKind
from stream.config import BrokerSettings, TopicSettings, WorkerSettings
from stream.metrics import StreamMetrics
from stream.review_service import (
    FeedbackRejected,
    ReviewService,
    parse_feedback,
    review_group,
)
from stream.review_store import ReviewStore

TOPICS = TopicSettings(
    email="r.email",
    ticket="r.ticket",
    article="r.article",
    routed="r.routed",
    dead_letter="r.dead",
    feedback="r.feedback",
    archive="r.archive",
    shadow="r.shadow",
)
NOW = datetime.now(timezone.utc)


@dataclass
class Msg:
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = 1_700_000_000_000


class FakeProducer:
    """Sends whose acknowledgements the test gives (or refuses)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes | None]] = []
        self.futures: list[asyncio.Future[None]] = []

    async def send(self, topic: str, value: bytes, *, key: bytes | None) -> asyncio.Future[None]:
        self.sent.append((topic, value, key))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future

    def ack_all(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)

    def dead(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(v) for _, v, _ in self.sent]


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[Any, int]] = []
        self.highwaters: dict[Any, int | None] = {}
        self.positions: dict[Any, int] = {}

    async def commit(self, offsets: dict[Any, int]) -> None:
        self.commits.append(dict(offsets))

    def highwater(self, tp: Any) -> int | None:
        return self.highwaters.get(tp)

    async def position(self, tp: Any) -> int:
        return self.positions.get(tp, 0)


def _settings(tmp_path: Path, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "broker": BrokerSettings(bootstrap_servers="127.0.0.1:9", idempotence="off"),
        "topics": TOPICS,
        "data_dir": tmp_path,
        "feedback_wait_s": 60.0,
        **overrides,
    }
    return WorkerSettings(**values)


def _service(tmp_path: Path, **overrides: Any) -> tuple[ReviewService, ReviewStore]:
    labels = {"ticket": {"billing", "tech"}}
    service = ReviewService(
        _settings(tmp_path, **overrides), StreamMetrics(CollectorRegistry()), labels_of=labels.get
    )
    return service, service.open_store()


def _archived(message_id: str) -> bytes:
    return (
        ArchivedMessage(
            message_id=message_id,
            kind=MessageKind.TICKET,
            pipeline="ticket",
            text="charged twice",
            category="billing",
            confidence=0.9,
            route="desk.billing",
            review=False,
            classifier=ModelRef(name="tickets", version="v1"),
            routed_at=NOW,
        )
        .model_dump_json()
        .encode()
    )


def _feedback(message_id: str, label: str = "tech") -> bytes:
    body = {"message_id": message_id, "label": label, "reviewer": "ana"}
    return json.dumps({**body, "reviewed_at": NOW.isoformat()}).encode()


def _metric(service: ReviewService, name: str, **labels: str) -> float:
    value = service.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


FEEDBACK_TP = TopicPartition(TOPICS.feedback, 1)
ARCHIVE_TP = TopicPartition(TOPICS.archive, 0)


async def test_dead_letters_are_acknowledged_before_the_batch_is_committed(
    tmp_path: Path,
) -> None:
    service, store = _service(tmp_path)
    consumer, producer = FakeConsumer(), FakeProducer()
    batch = {
        ARCHIVE_TP: [Msg(0, b"m1", _archived("m1"))],
        FEEDBACK_TP: [
            Msg(10, b"m1", _feedback("m1")),
            Msg(11, b"bad", b"\xff\xfe"),
            Msg(12, b"bad", b"{not json"),
            Msg(13, b"m9", b'{"message_id": "m9", "reviewer": "ana"}'),
            Msg(14, b"m1", _feedback("m1", label="Sports")),
            Msg(15, b"m2", _feedback("m2")),
        ],
    }

    take = asyncio.ensure_future(service._take(store, consumer, producer, batch))  # type: ignore[arg-type]
    await asyncio.sleep(0.2)

    assert not take.done() and consumer.commits == []
    dead = producer.dead()
    assert [d.reason for d in dead] == [
        DeadLetterReason.NOT_UTF8,
        DeadLetterReason.INVALID_JSON,
        DeadLetterReason.SCHEMA_ERROR,
        DeadLetterReason.UNKNOWN_LABEL,
    ]
    assert {t for t, _, _ in producer.sent} == {TOPICS.dead_letter}
    producer.ack_all()
    await take

    assert consumer.commits == [{ARCHIVE_TP: 1, FEEDBACK_TP: 16}]
    assert [j.feedback.message_id for j in store.joined()] == ["m1"]
    assert store.pending_count() == 1  # m2 waits for its message
    assert _metric(service, "textroute_feedback_total", pipeline="ticket", verdict="corrected")
    assert _metric(service, "textroute_feedback_total", pipeline="ticket", verdict="unjoined")
    assert _metric(service, "textroute_feedback_pending") == 1
    assert _metric(service, "textroute_archived_messages_total") == 1
    assert _metric(service, "textroute_dead_letters_total", reason="not_utf8") == 1


async def test_a_dead_letter_the_broker_refuses_commits_nothing_and_keeps_the_feedback(
    tmp_path: Path,
) -> None:
    service, store = _service(tmp_path)
    consumer, producer = FakeConsumer(), FakeProducer()
    store.add_feedback(parse_feedback(_feedback("m1", label="Sports")))

    take = asyncio.ensure_future(
        service._take(store, consumer, producer, {ARCHIVE_TP: [Msg(0, b"m1", _archived("m1"))]})  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.1)
    producer.futures[0].set_exception(ConnectionError("broker gone"))

    with pytest.raises(ConnectionError):
        await take
    assert consumer.commits == []
    # The rejected feedback is still held: reading the archive record again rejects it again.
    assert store.pending_count() == 1
    [again] = store.add_archived([ArchivedMessage.model_validate_json(_archived("m1"))])
    assert again.feedback.label == "Sports"  # type: ignore[union-attr]


def test_each_malformed_feedback_record_gets_its_reason() -> None:
    cases: Sequence[tuple[bytes | None, DeadLetterReason]] = [
        (None, DeadLetterReason.INVALID_JSON),
        (b"\xc3\x28", DeadLetterReason.NOT_UTF8),
        (b"[1, 2", DeadLetterReason.INVALID_JSON),
        (b'{"x": NaN}', DeadLetterReason.INVALID_JSON),
        (b'{"message_id": "m1", "reviewer": "a", "reviewed_at": "2026-01-01T00:00:00Z"}',
         DeadLetterReason.SCHEMA_ERROR),
        (b'{"message_id": "m1", "labels": ["\\udc00"], "reviewer": "a", '
         b'"reviewed_at": "2026-01-01T00:00:00Z"}', DeadLetterReason.SCHEMA_ERROR),
    ]  # fmt: skip
    for value, reason in cases:
        with pytest.raises(FeedbackRejected) as caught:
            parse_feedback(value)
        assert caught.value.reason is reason, value
    with pytest.raises(FeedbackRejected) as caught:
        parse_feedback(b'{"message_id": "m7", "reviewer": "a"}')
    assert caught.value.message_id == "m7"


async def test_a_dead_letter_keeps_the_feedback_record_and_where_it_came_from(
    tmp_path: Path,
) -> None:
    service, store = _service(tmp_path)
    consumer, producer = FakeConsumer(), FakeProducer()
    raw = b'{"message_id": "m5", "reviewer": "ana", "label": 3}'
    take = asyncio.ensure_future(
        service._take(store, consumer, producer, {FEEDBACK_TP: [Msg(41, b"k5", raw)]})  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    producer.ack_all()
    await take

    [(_, _, key)] = producer.sent
    [dead] = producer.dead()
    assert key == b"m5" and dead.message_id == "m5"
    assert (dead.source.topic, dead.source.partition, dead.source.offset) == (
        TOPICS.feedback,
        1,
        41,
    )
    assert base64.b64decode(dead.payload_b64) == raw and not dead.payload_truncated
    assert base64.b64decode(dead.key_b64 or "") == b"k5"
    assert dead.error_class == "RecordRejectedError" and "label" in dead.error_message


async def test_feedback_that_waited_out_the_wait_is_dropped_only_once_its_dead_letter_is_out(
    tmp_path: Path,
) -> None:
    service, store = _service(tmp_path, feedback_wait_s=0.1)
    producer = FakeProducer()
    consumer = FakeConsumer()
    take = asyncio.ensure_future(
        service._take(store, consumer, producer, {FEEDBACK_TP: [Msg(3, b"m4", _feedback("m4"))]})  # type: ignore[arg-type]
    )
    await take
    assert store.pending_count() == 1
    await asyncio.sleep(0.15)

    refused = asyncio.ensure_future(service.expire(store, producer))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    producer.futures[0].set_exception(ConnectionError("broker gone"))
    with pytest.raises(ConnectionError):
        await refused
    assert store.pending_count() == 1

    expiring = asyncio.ensure_future(service.expire(store, producer))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert store.pending_count() == 1
    producer.ack_all()
    [due] = await expiring

    assert due.feedback.message_id == "m4" and store.pending_count() == 0
    dead = producer.dead()[-1]
    assert dead.reason is DeadLetterReason.UNKNOWN_MESSAGE and dead.message_id == "m4"
    assert (dead.source.topic, dead.source.offset) == (TOPICS.feedback, 3)
    assert base64.b64decode(dead.payload_b64) == _feedback("m4")
    assert _metric(service, "textroute_feedback_total", pipeline="unknown", verdict="unjoined")


async def test_waiting_feedback_is_not_expired_while_the_archive_is_read_behind(
    tmp_path: Path,
) -> None:
    service, _ = _service(tmp_path)
    consumer = FakeConsumer()
    parts = {ARCHIVE_TP, FEEDBACK_TP}
    assert not await service._caught_up(consumer, parts)  # type: ignore[arg-type]
    consumer.highwaters[ARCHIVE_TP] = 10_000
    consumer.positions[ARCHIVE_TP] = 10
    assert not await service._caught_up(consumer, parts)  # type: ignore[arg-type]
    consumer.positions[ARCHIVE_TP] = 9_990
    assert await service._caught_up(consumer, parts)  # type: ignore[arg-type]


def test_the_worker_app_runs_the_review_service_unless_it_is_off(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from stream.faust_app import create_app

    def tasks(**overrides: Any) -> int:
        settings = _settings(tmp_path, **overrides)
        with ThreadPoolExecutor(1) as executor:
            app = create_app(
                settings,
                None,  # type: ignore[arg-type]
                executor,
                StreamMetrics(CollectorRegistry()),
                labels_of=lambda pipeline: None,
            )
        return len(app._app_tasks)

    assert tasks(review_store=True) == tasks(review_store=False) + 1
    assert review_group("textroute-router") == "textroute-router.review"
    # The store is opened when the service runs, not when the app is built.
    assert not (tmp_path / "review.sqlite").exists()


def test_expired_feedback_waits_for_the_whole_wait(tmp_path: Path) -> None:
    service, store = _service(tmp_path, feedback_wait_s=600)
    store.add_feedback(
        parse_feedback(_feedback("m1")), now=datetime.now(timezone.utc) - timedelta(seconds=590)
    )
    assert store.due() == []
    assert service.expire_interval_s == 30.0
