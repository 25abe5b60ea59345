"""Reviewers' feedback over HTTP, on the feedback topic (acks=all) before the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import structlog

from schemas.feedback import Feedback
from stream.api.errors import FeedbackDisabledError, FeedbackUnavailableError
from stream.api.settings import ApiSettings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = structlog.get_logger("textroute.api")


class FeedbackSink:
    """A producer to the feedback topic, connected on the first feedback (the API serves its
    models without a broker) and again after a failure."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.topic = settings.topics.feedback
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(self, items: Sequence[Feedback]) -> int:
        """Produce every item keyed by its message id and wait for the broker's
        acknowledgement of all; 503 errors when feedback is off or the broker fails."""
        from aiokafka.errors import KafkaError

        if not self.settings.feedback:
            raise FeedbackDisabledError(
                "this server takes no feedback (TEXTROUTE_API_FEEDBACK=false); send it to a "
                "server that does, or with `textroute feedback send`"
            )
        producer = await self._started()
        try:
            futures = [
                await producer.send(
                    self.topic,
                    item.model_dump_json().encode("utf-8"),
                    key=item.message_id.encode("utf-8"),
                )
                for item in items
            ]
            await asyncio.gather(*futures)
        except (KafkaError, OSError) as exc:
            await self._reset(producer)
            raise self._unavailable(exc) from exc
        return len(futures)

    async def aclose(self) -> None:
        async with self._lock:
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    async def _started(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer
        from aiokafka.errors import KafkaError

        async with self._lock:
            if self._producer is not None:
                return self._producer
            broker = self.settings.broker
            kwargs = broker.aiokafka_kwargs()
            # Within the request's own timeout, so a broker that stopped acknowledging gets a
            # 503 the client can act on, not the API's 504.
            timeout_s = min(broker.produce_timeout_s, self.settings.request_timeout_s / 2)
            kwargs["request_timeout_ms"] = max(1000, int(timeout_s * 1000))
            producer = AIOKafkaProducer(acks="all", linger_ms=5, **kwargs)
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                await producer.stop()
                raise self._unavailable(exc) from exc
            self._producer = producer
            return producer

    async def _reset(self, producer: AIOKafkaProducer) -> None:
        """Drop a producer that failed, so the next request connects afresh."""
        async with self._lock:
            if self._producer is producer:
                self._producer = None
        try:
            await producer.stop()
        except Exception as exc:  # stopping a broken producer may fail too
            log.warning("api.feedback_producer_stop", error=str(exc))

    def _unavailable(self, exc: BaseException) -> FeedbackUnavailableError:
        servers = self.settings.broker.bootstrap_servers
        log.warning("api.feedback_unavailable", bootstrap=servers, error=repr(exc))
        return FeedbackUnavailableError(
            f"the feedback was not taken: the Kafka broker at {servers} "
            f"(TEXTROUTE_BROKER_BOOTSTRAP_SERVERS) did not acknowledge it on topic "
            f"{self.topic} ({type(exc).__name__}); send it again later"
        )
