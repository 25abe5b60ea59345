"""The faust app: micro-batches the inbound topics through a BatchProcessor, at least once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

import structlog

from stream.broker import run_blocking
from stream.config import BrokerSettings, WorkerSettings
from stream.errors import BrokerUnavailableError, DeliveryFailedError
from stream.metrics import StreamMetrics
from stream.processor import BatchProcessor, BatchResult, InboundRecord
from stream.review_store import LabelsOf

if TYPE_CHECKING:
    import faust
    from faust.streams import Stream
    from faust.types import EventT, StreamT

log = structlog.get_logger(__name__)


def _raw_topic(app: faust.App, *names: str) -> faust.TopicT:
    # Raw bytes in: the worker validates payloads itself, so a bad one is dead-lettered
    # instead of failing inside faust's deserializer.
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )


class _Output:
    """One output topic, written through the app's producer.

    faust's `Topic.send` wraps each record in pending and future messages, serializer calls,
    sensor hooks and a completion callback; the worker's outputs are bytes already, and it
    waits on the broker's acknowledgements itself, so the records go to the producer as they
    are. faust never declared these topics either: the deployment creates them (compose's
    `topic-init`, `deploy/kafka/create-topics.sh`, or `textroute produce` and the demo)."""

    def __init__(self, app: faust.App, topic: str) -> None:
        self.app = app
        self.topic = topic

    async def send(self, *, key: bytes | None, value: bytes) -> Awaitable[Any]:
        """Queue the record; the returned future resolves when the broker acknowledges it."""
        producer = await self.app.maybe_start_producer()
        sent: Awaitable[Any] = await producer.send(
            self.topic, key, value, partition=None, timestamp=None, headers=None
        )
        return sent


def faust_broker_options(broker: BrokerSettings) -> dict[str, Any]:
    """faust.App keyword arguments for the broker, including SASL/TLS credentials."""
    import faust

    options: dict[str, Any] = {
        "broker": [f"kafka://{server}" for server in broker.servers],
        "broker_session_timeout": broker.session_timeout_s,
        "broker_heartbeat_interval": broker.heartbeat_interval_s,
        "broker_request_timeout": broker.request_timeout_s,
    }
    context = broker.ssl_context()
    if broker.sasl_mechanism:
        password = broker.sasl_password.get_secret_value() if broker.sasl_password else None
        options["broker_credentials"] = faust.SASLCredentials(
            username=broker.sasl_username,
            password=password,
            mechanism=broker.sasl_mechanism,
            ssl_context=context,
        )
    elif context is not None:
        options["broker_credentials"] = faust.SSLCredentials(context)
    return options


def producer_idempotence(broker: BrokerSettings) -> bool:
    """Whether the worker's producer is idempotent: as configured, or (auto) as the broker
    allows. A broker that cannot be asked counts as not allowing it, with a warning."""
    if broker.idempotence != "auto":
        return broker.idempotence == "on"
    from stream.topics import supports_idempotence

    try:
        supported = run_blocking(supports_idempotence(broker))
    except BrokerUnavailableError as exc:
        log.warning("worker.idempotence_unknown", error=str(exc))
        return False
    log.info("worker.idempotence", enabled=supported)
    return supported


def _to_record(event: EventT[bytes], received_at: datetime) -> InboundRecord:
    message = event.message
    timestamp = (
        datetime.fromtimestamp(message.timestamp, tz=timezone.utc) if message.timestamp else None
    )
    return InboundRecord(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        timestamp=timestamp,
        received_at=received_at,
    )


class RouterAgent:
    """The agent body and its helpers; the faust wiring lives in `create_app`."""

    def __init__(
        self,
        app: faust.App,
        settings: WorkerSettings,
        processor: BatchProcessor,
        executor: Executor,
        metrics: StreamMetrics,
    ) -> None:
        self.app = app
        self.settings = settings
        self.processor = processor
        self.executor = executor
        self.metrics = metrics
        t = settings.topics
        self.outputs = {
            name: _Output(app, name) for name in (t.routed, t.dead_letter, t.archive, t.shadow)
        }
        #: (topic, partition) -> next offset to process, for the consumer-lag gauge.
        self.positions: dict[tuple[str, int], int] = {}
        #: Why delivery failed, once it has: the worker then stops and exits non-zero.
        self.failure: BaseException | None = None
        self._task: asyncio.Task[Any] | None = None

    async def run(self, stream: StreamT[bytes]) -> None:
        """Consume batches until the worker stops, at least once.

        A two-stage pipeline: batch N's outputs are produced, and its inputs acked once the
        broker has them, while batch N+1 is in inference, so the model does not sit idle for
        the broker's round trip. One batch is delivered at a time, in order.

        faust's `take_events` acks a batch itself as soon as the next one is asked for, which
        here is while that batch's outputs are still in flight. Each input is therefore held
        (one more reference) from the moment it arrives: faust's ack drops that reference, and
        only ours, after the broker acknowledged every output, lets its offset be committed.
        A failed delivery stops the agent at once, whatever it is waiting for, and crashes the
        worker with nothing acked past the last batch delivered.
        """
        s = self.settings
        batches = cast("Stream[bytes]", stream).take_events(s.batch_size, within=s.batch_wait_s)
        self._task = asyncio.current_task()
        delivering: asyncio.Future[None] | None = None
        try:
            async for events in batches:
                for event in events:
                    event.message.incref()
                inference = asyncio.ensure_future(self.infer(events))
                try:
                    records, result, process_s = await asyncio.shield(inference)
                except asyncio.CancelledError:
                    self._raise_delivery_failure()
                    # SIGTERM while a batch is in hand: finish it, so its outputs are produced
                    # and its offsets committed when the consumer stops, not redone next start.
                    log.info("worker.finishing_batch", size=len(events))
                    records, result, process_s = await inference
                    await self._settle(delivering)
                    await self.deliver(stream, events, records, result, process_s)
                    raise
                await self._settle(delivering)
                delivering = asyncio.ensure_future(
                    self.deliver(stream, events, records, result, process_s)
                )
                delivering.add_done_callback(self._on_delivered)
        except asyncio.CancelledError:
            self._raise_delivery_failure()
            raise
        except Exception:
            # Nothing of the failed batch is acked, so a restart re-delivers it.
            log.exception("worker.batch_failed")
            raise
        finally:
            if self.failure is None:
                await self._settle(delivering)

    def _on_delivered(self, delivering: asyncio.Future[None]) -> None:
        if delivering.cancelled() or delivering.exception() is None:
            return
        self.failure = delivering.exception()
        log.error("worker.delivery_failed", error=f"{type(self.failure).__name__}: {self.failure}")
        # Stop consuming now, not when the next batch happens to arrive.
        if self._task is not None:
            self._task.cancel()

    def _raise_delivery_failure(self) -> None:
        if self.failure is not None:
            raise DeliveryFailedError(
                f"outputs were not acknowledged by the broker: {self.failure}"
            ) from self.failure

    @staticmethod
    async def _settle(delivering: asyncio.Future[None] | None) -> None:
        # Shielded: a stop arriving meanwhile must not abandon outputs already being produced.
        if delivering is not None:
            await asyncio.shield(delivering)

    async def infer(
        self, events: Sequence[EventT[bytes]]
    ) -> tuple[list[InboundRecord], BatchResult, float]:
        """Decode, validate, infer and route one batch in the executor."""
        received_at = datetime.now(timezone.utc)
        records = [_to_record(e, received_at) for e in events]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        result = await loop.run_in_executor(self.executor, self.processor.process, records)
        return records, result, time.perf_counter() - started

    async def deliver(
        self,
        stream: StreamT[bytes],
        events: Sequence[EventT[bytes]],
        records: Sequence[InboundRecord],
        result: BatchResult,
        process_s: float,
    ) -> None:
        """Produce every output of a batch, wait for the broker's acks, then ack the inputs."""
        started = time.perf_counter()
        futures = [
            await self.outputs[out.topic].send(key=out.key, value=out.value)
            for out in result.outbound(self.settings.topics)
        ]
        # Waiting for the broker's acknowledgement of every output before the inputs are
        # acked is what makes this at-least-once: a crash before here re-delivers them.
        await asyncio.gather(*futures)
        # Acking marks offsets committable; faust commits them on its interval and at stop.
        for event in events:
            await stream.ack(event)
        produce_s = time.perf_counter() - started
        self.metrics.batch_seconds.observe(process_s + produce_s)
        self._observe(records, result, process_s=process_s, produce_s=produce_s)

    def _observe(
        self,
        records: Sequence[InboundRecord],
        result: BatchResult,
        *,
        process_s: float,
        produce_s: float,
    ) -> None:
        m = self.metrics
        m.batch_size.observe(len(records))
        for kind in result.kinds:
            m.messages_in.labels(kind=kind.value if kind else "unknown").inc()
        if result.classify_s:
            m.inference_seconds.labels(model="classifier").observe(result.classify_s)
        if result.ner_s:
            m.inference_seconds.labels(model="ner").observe(result.ner_s)
        now = datetime.now(timezone.utc)
        for event in result.events:
            m.messages_routed.labels(kind=event.kind.value, route=event.route).inc()
            if event.source.timestamp is not None:
                m.end_to_end_seconds.observe(
                    max(0.0, (now - event.source.timestamp).total_seconds())
                )
        for dead in result.dead_letters:
            m.dead_letters.labels(reason=dead.reason.value).inc()
        for record in records:
            key = (record.topic, record.partition)
            self.positions[key] = max(self.positions.get(key, 0), record.offset + 1)
        log.debug(
            "worker.batch",
            size=len(records),
            routed=len(result.events),
            dead=len(result.dead_letters),
            classify_ms=round(result.classify_s * 1000, 1),
            ner_ms=round(result.ner_s * 1000, 1),
            process_ms=round(process_s * 1000, 1),
            produce_ms=round(produce_s * 1000, 1),
        )

    def update_lag(self) -> None:
        """Set the consumer-lag gauge from the high watermarks the consumer has seen."""
        consumer = self.app.consumer
        for tp in consumer.assignment():
            position = self.positions.get((tp.topic, tp.partition))
            highwater = consumer.highwater(tp)
            if position is None or highwater is None:
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(
                max(0, highwater - position)
            )


def create_app(
    settings: WorkerSettings,
    processor: BatchProcessor,
    executor: Executor,
    metrics: StreamMetrics,
    *,
    reload: Callable[[], object] | None = None,
    labels_of: LabelsOf | None = None,
) -> faust.App:
    """A faust app whose one agent routes the inbound topics; `reload()` (blocking) is run in
    the executor every `reload_interval_s` to pick up new model versions.

    With `settings.review_store` the app also runs the review service (stream.review_service)
    as a task: it keeps the review store from the archive and feedback topics, under its own
    consumer group; `labels_of(pipeline)` gives the labels feedback is checked against."""
    import faust
    import mode

    from stream._faust_kafka import use_transport
    from stream.topics import RECORD_OVERHEAD_BYTES

    idempotent = producer_idempotence(settings.broker)
    app = faust.App(
        settings.app_id,
        # A batch that cannot be produced must stop the process, not just restart the agent:
        # faust would move past its unacked records, and only a restart re-delivers them.
        agent_supervisor=mode.CrashingSupervisor,
        **faust_broker_options(settings.broker),
        # The app id names the worker's connections in broker logs (and to a fault proxy).
        broker_client_id=settings.app_id,
        # Stateless worker: no tables, no web server, no leader topic.
        store="memory://",
        web_enabled=False,
        topic_disable_leader=True,
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication,
        consumer_auto_offset_reset=settings.auto_offset_reset,
        broker_commit_interval=settings.commit_interval_s,
        producer_acks=-1,
        # A batch's outputs leave in a few produce requests rather than one per record or two.
        producer_linger=settings.producer_linger_ms / 1000,
        # faust waits 1,200 s for a produce by default: a broker that stopped acknowledging
        # would hold the worker, and its inputs, for twenty minutes before anyone heard.
        producer_request_timeout=settings.broker.produce_timeout_s,
        producer_max_request_size=settings.max_output_bytes + RECORD_OVERHEAD_BYTES,
        datadir=str(settings.data_dir / settings.app_id),
    )
    use_transport(app, fetch_max_wait_ms=settings.fetch_max_wait_ms, idempotent=idempotent)
    inbound = _raw_topic(app, *settings.topics.inbound())
    agent = RouterAgent(app, settings, processor, executor, metrics)
    app.agent(inbound, name=f"{settings.app_id}.router", concurrency=1)(agent.run)

    def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[Any] = set(args[0]) if args else set()
        log.info(
            "worker.assigned", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned)
        )

    app.on_partitions_assigned.connect(on_assigned)

    async def update_lag() -> None:
        agent.update_lag()

    app.timer(interval=settings.lag_interval_s, name="consumer-lag")(update_lag)

    if reload is not None and settings.reload_interval_s > 0:

        async def reload_models() -> None:
            await asyncio.get_running_loop().run_in_executor(executor, reload)

        app.timer(interval=settings.reload_interval_s, name="model-reload")(reload_models)

    if settings.review_store:
        from stream.review_service import ReviewService

        # A task of the app: started once the app runs, cancelled when it stops. It retries
        # its own failures, so the routing never waits for it.
        app.task(ReviewService(settings, metrics, labels_of=labels_of).run)

    return app
