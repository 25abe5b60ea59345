"""faust's aiokafka transport with a configurable fetch wait (faust hard-codes 1.5 s), an
idempotent producer outside transactions (faust enables one only inside them) and one wait per
fetched batch rather than per message."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import faust
from faust.transport import consumer as driver_consumer
from faust.transport.drivers import aiokafka as driver


class _ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = getattr(transport, "fetch_max_wait_ms", None)
        if wait is not None:
            # Read by AIOKafkaConsumer.start() when it builds its fetcher; there is no public
            # setter, and faust passes a fixed 1500.
            consumer._fetch_max_wait_ms = wait
        return consumer


class _Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:
        """faust's fetch loop (`Consumer._drain_messages`, faust-streaming 0.15), handing each
        fetched batch to the streams under one wait instead of one per message.

        faust races each message's hand-off against the flow suspension, stop and crash
        events: four tasks, an `asyncio.wait` and their cancellation a message. Here
        the batch is fetched as faust fetches it (waiting there while the flow is suspended),
        and one such race covers its hand-off. A suspension (a rebalance) cancels the rest of
        it: those messages are not handed over, and the seek to the committed offsets that
        follows the rebalance fetches them again.
        """
        callback = self.callback
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        set_flag, unset_flag = self.diag.set_flag, self.diag.unset_flag
        consumer_stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        yield_every = 100
        since_yield = 0

        async def hand_over(batch: list[tuple[Any, Any]]) -> None:
            nonlocal since_yield
            for tp, message in batch:
                since_yield += 1
                if since_yield > yield_every:
                    # Let the agent run while a large batch is handed over.
                    await asyncio.sleep(0)
                    since_yield = 0
                offset = message.offset
                read = get_read_offset(tp)
                if read is not None and offset < read:
                    continue  # already handed over before a seek back
                if read and offset - read > 1 and acks_enabled_for(message.topic):
                    await self._add_gap(tp, read + 1, offset)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                await callback(message)
                set_read_offset(tp, offset)

        try:
            while not (consumer_stopped() or fetcher_stopped()):
                set_flag(driver_consumer.CONSUMER_FETCHING)
                # Outside the race: a suspended flow waits in here for its resumption, where
                # a race with the suspension would end at once and spin.
                batch = [item async for item in self.getmany(timeout=1.0)]
                # getmany may return at once many times in a row: let the loop breathe.
                await self.sleep(0)
                if batch and not self.should_stop:
                    await self.wait_first(hand_over(batch), self.suspend_flow.wait())
                unset_flag(driver_consumer.CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(driver_consumer.CONSUMER_FETCHING)


class _Producer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        extra = dict(super()._settings_extra())
        if getattr(self.transport, "idempotent", False):
            # acks=all is already set; idempotence keeps a retried batch from being written
            # twice, and requires max_in_flight 1..5, which aiokafka holds to.
            extra["enable_idempotence"] = True
        return extra


class _Transport(driver.Transport):
    Consumer = _Consumer
    Producer = _Producer
    fetch_max_wait_ms: int | None = None
    idempotent: bool = False


def use_transport(app: faust.App, *, fetch_max_wait_ms: int, idempotent: bool) -> None:
    """Make `app`'s Kafka consumer wait at most `fetch_max_wait_ms` per fetch request, and
    its producer idempotent when `idempotent`.

    tansu answers a fetch when its wait expires rather than when data arrives (as Kafka does),
    so faust's fixed 1.5 s wait turns into 0.4-1.5 s of latency per message on the embedded
    broker. Call right after creating the app, before any topic or agent is defined.
    """
    transport = _Transport(app.conf.broker_consumer, app)
    transport.fetch_max_wait_ms = fetch_max_wait_ms
    transport.idempotent = idempotent
    app.transport = transport
