"""The review service: the archive and feedback topics into the review store, at least once.

One consumer reads every partition of both topics (the join needs all of them: feedback and
its archive record may sit in partitions of different numbers) under its own consumer group,
`<app_id>.review`, used only to keep its offsets. Each batch is handled in three steps:

1. the store takes the batch: archive records are upserted (joining feedback that waited for
   them), then each feedback record is validated and joined, kept waiting, or rejected;
2. the dead letters of the batch (malformed feedback, unknown labels) are produced to the
   dead-letter topic and acknowledged by the broker (acks=all);
3. only then are the batch's offsets committed.

A crash anywhere re-reads the batch from the last commit: the store's upserts make that
harmless and the dead letters are produced again (at least once). Feedback kept waiting is
held by the store (SQLite) from step 1, so committing its offset loses nothing. A timer checks
the waiting feedback: what waited longer than `feedback_wait_s` for its message is
dead-lettered (unknown_message) and only removed from the store once that dead letter is
acknowledged. Any failure (broker, store) restarts the consumer from the last commit after a
back-off; the routing in the same process is never affected.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from schemas.events import DeadLetterReason
from schemas.feedback import ArchivedMessage, Feedback
from stream._pydantic import summarize_validation_error
from stream.config import WorkerSettings
from stream.dead_letters import EncodedDeadLetter, describe, encode_dead_letter
from stream.errors import BrokerUnavailableError, RecordRejectedError
from stream.metrics import StreamMetrics
from stream.records import InboundRecord, parse_json
from stream.review_store import (
    Joined,
    LabelsOf,
    Pending,
    Rejected,
    ReviewStore,
)

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

log = structlog.get_logger(__name__)

#: The rejection of a record by the review service, as its dead letter's error class.
REJECTED = "RecordRejectedError"
#: The pipeline label of feedback whose message (and so pipeline) is unknown.
UNKNOWN_PIPELINE = "unknown"
#: How often the partitions of the two topics are looked up again (new partitions).
PARTITION_REFRESH_S = 60.0


def review_group(app_id: str) -> str:
    """The review service's consumer group: kept apart from the router's."""
    return f"{app_id}.review"


def default_expire_interval(feedback_wait_s: float) -> float:
    """How often waiting feedback is checked: a quarter of the wait, between 50 ms and 30 s."""
    return min(30.0, max(0.05, feedback_wait_s / 4))


class FeedbackRejected(ValueError):
    """A feedback record that is not usable feedback, with its dead letter's reason."""

    def __init__(self, reason: DeadLetterReason, message: str, message_id: str | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message_id = message_id


def parse_feedback(value: bytes | None) -> Feedback:
    """The Feedback of a record's value; FeedbackRejected (not_utf8, invalid_json,
    schema_error) when it is none."""
    if not value:
        raise FeedbackRejected(
            DeadLetterReason.INVALID_JSON, "record has no value (tombstone)", None
        )
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FeedbackRejected(
            DeadLetterReason.NOT_UTF8, f"value is not UTF-8: {exc}", None
        ) from exc
    try:
        # The worker's own strict JSON: no NaN or Infinity, finite doubles, bounded integers.
        data = parse_json(text)
    except RecordRejectedError as exc:
        raise FeedbackRejected(exc.reason, str(exc), None) from exc
    named = data.get("message_id") if isinstance(data, dict) else None
    message_id = named if isinstance(named, str) and named else None
    try:
        # The schema refuses lone surrogates (JSON escapes like "\udc00"), which no UTF-8
        # output, nor the store, can carry.
        return Feedback.model_validate(data)
    except ValidationError as exc:
        raise FeedbackRejected(
            DeadLetterReason.SCHEMA_ERROR,
            f"not valid feedback: {summarize_validation_error(exc)}",
            message_id,
        ) from exc


@dataclass
class _Taken:
    """What the store made of one batch."""

    dead: list[EncodedDeadLetter] = field(default_factory=list)
    #: Waiting feedback rejected when its message arrived: dropped once dead-lettered.
    drop: list[Rejected] = field(default_factory=list)
    joined: list[Joined] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    archived: int = 0
    bad_archive: int = 0


class ReviewService:
    """Keeps the review store: see the module's docstring. `run()` until cancelled."""

    def __init__(
        self,
        settings: WorkerSettings,
        metrics: StreamMetrics,
        *,
        labels_of: LabelsOf | None = None,
        group_id: str | None = None,
        expire_interval_s: float | None = None,
        max_records: int = 500,
        retry_backoff_s: tuple[float, float] = (1.0, 30.0),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.group_id = group_id or review_group(settings.app_id)
        self.expire_interval_s = expire_interval_s or default_expire_interval(
            settings.feedback_wait_s
        )
        self.max_records = max_records
        self.retry_backoff_s = retry_backoff_s
        self._labels_of = labels_of
        #: Set once the service has read its partitions: the store file is open and the
        #: consumer assigned (for tests and logs).
        self.ready = asyncio.Event()
        self.store: ReviewStore | None = None

    def open_store(self) -> ReviewStore:
        s = self.settings
        return ReviewStore(
            s.review_store_file(),
            labels_of=self._checked_labels if self._labels_of is not None else None,
            retention=timedelta(days=s.archive_retention_days),
            feedback_wait=timedelta(seconds=s.feedback_wait_s),
        )

    def _checked_labels(self, pipeline: str) -> Collection[str] | None:
        # A failing lookup must not stop the store: the label is then not checked.
        assert self._labels_of is not None
        try:
            return self._labels_of(pipeline)
        except Exception as exc:
            log.warning("review.labels_unknown", pipeline=pipeline, error=describe(exc))
            return None

    async def run(self) -> None:
        """Consume until cancelled; failures restart the consumer from the last commit."""
        store = self.store = await asyncio.to_thread(self.open_store)
        log.info(
            "review.starting",
            store=str(store.path),
            group=self.group_id,
            topics=[self.settings.topics.archive, self.settings.topics.feedback],
        )
        initial, most = self.retry_backoff_s
        backoff = initial
        try:
            while True:
                started = time.monotonic()
                try:
                    await self._session(store)
                except Exception as exc:
                    if time.monotonic() - started > 4 * most:
                        backoff = initial  # it had been working: start the back-off afresh
                    log.error(
                        "review.failed",
                        error=f"{type(exc).__name__}: {describe(exc)}",
                        retry_in_s=backoff,
                    )
                    self.ready.clear()
                    await asyncio.sleep(backoff)
                    backoff = min(most, backoff * 2)
        finally:
            store.close()

    # ---- one consumer session ----

    async def _session(self, store: ReviewStore) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
        from aiokafka.errors import KafkaError

        from stream.topics import RECORD_OVERHEAD_BYTES, ensure_topics, worker_topic_limits

        s = self.settings
        topics = s.topics
        await ensure_topics(
            s.broker,
            [topics.archive, topics.feedback, topics.dead_letter],
            topics.partitions,
            topics.replication,
            configs=worker_topic_limits(s),
        )
        kwargs = s.broker.aiokafka_kwargs()
        consumer = AIOKafkaConsumer(
            group_id=self.group_id,
            client_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=s.review_fetch_max_wait_ms,
            **kwargs,
        )
        producer = AIOKafkaProducer(
            acks="all",
            client_id=self.group_id,
            max_request_size=s.max_output_bytes + RECORD_OVERHEAD_BYTES,
            **kwargs,
        )
        try:
            try:
                await producer.start()
                await consumer.start()
            except (KafkaError, OSError) as exc:
                raise BrokerUnavailableError(
                    f"no Kafka broker answered at {s.broker.bootstrap_servers} "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            await self._consume(store, consumer, producer)
        finally:
            await consumer.stop()
            await producer.stop()

    async def _consume(
        self, store: ReviewStore, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer
    ) -> None:
        loop = asyncio.get_running_loop()
        assigned = await self._assign(consumer, set())
        log.info("review.assigned", group=self.group_id, partitions=len(assigned))
        self.ready.set()
        next_tick = loop.time()  # at once: feedback may have run out its wait while stopped
        next_refresh = loop.time() + PARTITION_REFRESH_S
        while True:
            now = loop.time()
            if now >= next_tick:
                # Feedback waits for archive records still unread only while the consumer
                # catches up (after a stop, say): none has waited out the wait for them.
                if await self._caught_up(consumer, assigned):
                    await self.expire(store, producer)
                next_tick = now + self.expire_interval_s
            if now >= next_refresh:
                # Only between batches, with everything read committed: a new assignment
                # starts each partition at its committed offset.
                assigned = await self._assign(consumer, assigned)
                next_refresh = now + PARTITION_REFRESH_S
            wait_ms = max(1, int((next_tick - loop.time()) * 1000))
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=self.max_records)
            if batch:
                await self._take(store, consumer, producer, batch)

    async def _assign(self, consumer: AIOKafkaConsumer, current: set[Any]) -> set[Any]:
        """Assign every partition of the archive and feedback topics (again, when there are
        new ones); the consumer group only keeps the offsets."""
        from aiokafka import TopicPartition

        names = (self.settings.topics.archive, self.settings.topics.feedback)
        deadline = time.monotonic() + 30.0
        while True:
            await consumer.topics()  # refreshes the metadata
            found = {name: consumer.partitions_for_topic(name) for name in names}
            if all(found.values()) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        missing = [name for name, parts in found.items() if not parts]
        if missing:
            raise BrokerUnavailableError(f"topic(s) {', '.join(missing)} have no partitions")
        wanted = {TopicPartition(name, p) for name, parts in found.items() for p in parts or ()}
        if wanted != current:
            consumer.assign(sorted(wanted))
        return wanted

    async def _caught_up(self, consumer: AIOKafkaConsumer, assigned: set[Any]) -> bool:
        """Whether every archive partition has been read up to its last known end, but for
        at most one batch (the consumer fetches ahead; a busy topic is never quite at its
        end)."""
        for tp in assigned:
            if tp.topic != self.settings.topics.archive:
                continue
            highwater = consumer.highwater(tp)
            if highwater is None:
                return False  # not fetched yet
            if highwater - await consumer.position(tp) > self.max_records:
                return False
        return True

    async def _take(
        self,
        store: ReviewStore,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: Mapping[Any, Sequence[Any]],
    ) -> None:
        """Store a batch, produce its dead letters, then commit its offsets."""
        received_at = datetime.now(timezone.utc)
        records = [
            InboundRecord(
                topic=tp.topic,
                partition=tp.partition,
                offset=m.offset,
                key=m.key,
                value=m.value,
                timestamp=(
                    datetime.fromtimestamp(m.timestamp / 1000, tz=timezone.utc)
                    if m.timestamp is not None and m.timestamp >= 0
                    else None
                ),
                received_at=received_at,
            )
            for tp, messages in batch.items()
            for m in messages
        ]
        taken = await asyncio.to_thread(self.take, store, records)
        await self._produce(producer, taken.dead)
        if taken.drop:
            await asyncio.to_thread(store.drop, taken.drop)
        await consumer.commit(
            {tp: messages[-1].offset + 1 for tp, messages in batch.items() if messages}
        )
        m = self.metrics
        if taken.archived:
            m.archived_messages.inc(taken.archived)
        if taken.bad_archive:
            m.archive_dropped.labels(reason=DeadLetterReason.SCHEMA_ERROR.value).inc(
                taken.bad_archive
            )
        for joined in taken.joined:
            m.feedback_total.labels(pipeline=joined.message.pipeline, verdict=joined.verdict).inc()
        for rejected in taken.rejected:
            pipeline = rejected.pipeline or UNKNOWN_PIPELINE
            m.feedback_total.labels(pipeline=pipeline, verdict="unjoined").inc()
        for dead in taken.dead:
            m.dead_letters.labels(reason=dead.message.reason.value).inc()
        m.feedback_pending.set(await asyncio.to_thread(store.pending_count))

    def take(self, store: ReviewStore, records: Sequence[InboundRecord]) -> _Taken:
        """What the store makes of a batch (blocking): archive records first, so feedback in
        the same batch finds its message; then each feedback record in its partition's order.
        A store failure (SQLite) raises, and the batch is read again."""
        topics = self.settings.topics
        taken = _Taken()
        messages: list[ArchivedMessage] = []
        for record in records:
            if record.topic != topics.archive or record.value is None:
                continue  # a tombstone on the compacted archive: nothing to join
            try:
                messages.append(ArchivedMessage.model_validate_json(record.value))
            except ValueError as exc:
                taken.bad_archive += 1
                log.warning(
                    "review.bad_archive_record",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    error=describe(exc)[:300],
                )
        taken.archived = len(messages)
        for outcome in store.add_archived(messages):
            self._note(taken, outcome)
        for record in records:
            if record.topic == topics.feedback:
                self._take_feedback(store, record, taken)
        return taken

    def _take_feedback(self, store: ReviewStore, record: InboundRecord, taken: _Taken) -> None:
        try:
            feedback = parse_feedback(record.value)
        except FeedbackRejected as exc:
            taken.dead.append(self._dead(record, exc.reason, str(exc), exc.message_id))
            return
        try:
            outcome = store.add_feedback(feedback, record, now=record.received_at)
        except sqlite3.Error:
            raise
        except Exception as exc:
            # A bug or an input nobody foresaw costs this record, never the loop.
            log.exception("review.unexpected", message_id=feedback.message_id)
            taken.dead.append(
                self._dead(
                    record,
                    DeadLetterReason.UNEXPECTED_ERROR,
                    describe(exc),
                    feedback.message_id,
                    error_class=type(exc).__name__,
                )
            )
            return
        if outcome is not None:
            self._note(taken, outcome)

    def _note(self, taken: _Taken, outcome: Joined | Rejected) -> None:
        if isinstance(outcome, Joined):
            taken.joined.append(outcome)
            return
        taken.rejected.append(outcome)
        record = outcome.record or self._stand_in(outcome.feedback)
        taken.dead.append(
            self._dead(record, outcome.reason, outcome.detail, outcome.feedback.message_id)
        )
        # Waiting feedback rejected once its message came is dropped after its dead letter.
        taken.drop.append(outcome)

    def _dead(
        self,
        record: InboundRecord,
        reason: DeadLetterReason,
        message: str,
        message_id: str | None,
        *,
        error_class: str = REJECTED,
    ) -> EncodedDeadLetter:
        s = self.settings
        return encode_dead_letter(
            record,
            reason,
            error_class,
            message,
            payload_bytes=s.dead_letter_payload_bytes,
            max_output_bytes=s.max_output_bytes,
            message_id=message_id,
        )

    def _stand_in(self, feedback: Feedback) -> InboundRecord:
        """A record for feedback the store holds without one (added by other means than the
        feedback topic): its JSON, keyed by its message id."""
        return InboundRecord(
            topic=self.settings.topics.feedback,
            partition=0,
            offset=0,
            key=feedback.message_id.encode("utf-8"),
            value=feedback.model_dump_json().encode("utf-8"),
            timestamp=None,
            received_at=datetime.now(timezone.utc),
        )

    async def expire(self, store: ReviewStore, producer: AIOKafkaProducer) -> list[Pending]:
        """Dead-letter (unknown_message) the feedback that waited out the feedback wait, and
        forget it once the broker has the dead letters; drop archived messages past the
        retention. What was dead-lettered."""
        pruned = await asyncio.to_thread(store.prune)
        if pruned:
            log.info("review.pruned", archived=pruned)
        due = await asyncio.to_thread(store.due)
        if due:
            wait = self.settings.feedback_wait_s
            dead = [
                self._dead(
                    p.record or self._stand_in(p.feedback),
                    DeadLetterReason.UNKNOWN_MESSAGE,
                    f"no archived message {p.feedback.message_id!r} within the feedback wait "
                    f"of {_seconds(wait)} s (TEXTROUTE_WORKER_FEEDBACK_WAIT_S): it was never "
                    "routed, routed without the archive (TEXTROUTE_WORKER_ARCHIVE=false), or "
                    "routed longer ago than the archive retention",
                    p.feedback.message_id,
                )
                for p in due
            ]
            await self._produce(producer, dead)
            await asyncio.to_thread(store.drop, due)
            m = self.metrics
            m.feedback_total.labels(pipeline=UNKNOWN_PIPELINE, verdict="unjoined").inc(len(due))
            m.dead_letters.labels(reason=DeadLetterReason.UNKNOWN_MESSAGE.value).inc(len(due))
            log.info("review.unknown_messages", count=len(due))
        self.metrics.feedback_pending.set(await asyncio.to_thread(store.pending_count))
        return due

    async def _produce(self, producer: AIOKafkaProducer, dead: Sequence[EncodedDeadLetter]) -> None:
        """Produce the dead letters and wait until the broker acknowledged every one."""
        if not dead:
            return
        topic = self.settings.topics.dead_letter
        futures = [await producer.send(topic, d.value, key=d.key) for d in dead]
        await asyncio.gather(*futures)


def _seconds(value: float) -> str:
    return str(int(value)) if math.isclose(value, round(value)) else f"{value:g}"


def labels_from_pipelines(path: Path | str) -> LabelsOf:
    """Pipeline name -> its classifier's labels, read from the manifests the pipelines file
    names (no model is loaded); PipelineConfigError for a file or manifest that cannot be
    read."""
    from schemas.artifact import read_manifest
    from stream.errors import PipelineConfigError
    from stream.pipeline_config import classes_of, load_pipelines

    labels: dict[str, frozenset[str]] = {}
    for pipeline in load_pipelines(path):
        try:
            manifest = read_manifest(pipeline.classifier, verify=False)
        except Exception as exc:
            raise PipelineConfigError(
                f"pipelines.{pipeline.name}.classifier: {pipeline.classifier} is not a model "
                f"artifact: {exc}"
            ) from exc
        labels[pipeline.name] = frozenset(classes_of(manifest))
    return labels.get
