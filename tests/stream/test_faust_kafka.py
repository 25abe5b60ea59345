"""The worker's faust transport: its fetch loop hands each fetched batch to the streams in order,
under one wait, skips what it already handed over, and stops handing over on a flow suspension."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
from faust.types import TP

from stream._faust_kafka import use_transport

TOPIC = TP("t.email", 0)


class FakeMessage:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = TOPIC.topic, TOPIC.partition, offset


class Fetcher:
    """What the loop is given to know when to stop: the fetcher service's stopped event."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def _consumer(fetches: list[list[int]]) -> tuple[Any, Fetcher, list[int], list[int]]:
    """The worker app's real consumer, fed `fetches` (offsets) by a fake getmany; returns it,
    its fetcher, the offsets handed over and the number of messages each wait covered."""
    app = faust.App("transport-test", broker="kafka://localhost:1")
    use_transport(app, fetch_max_wait_ms=50, idempotent=False)
    consumer: Any = app.consumer
    fetcher = Fetcher()
    handed: list[int] = []
    per_wait: list[int] = []
    pending = list(fetches)

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, FakeMessage]]:
        if not pending:
            fetcher._stopped.set()
            return
        for offset in pending.pop(0):
            yield TOPIC, FakeMessage(offset)

    async def callback(message: FakeMessage) -> None:
        handed.append(message.offset)

    wait_first = consumer.wait_first

    async def counting_wait_first(*waits: Any, **kwargs: Any) -> Any:
        before = len(handed)
        result = await wait_first(*waits, **kwargs)
        per_wait.append(len(handed) - before)
        return result

    consumer.getmany = getmany
    consumer.callback = callback
    consumer.wait_first = counting_wait_first
    return consumer, fetcher, handed, per_wait


async def _drain(consumer: Any, fetcher: Fetcher) -> None:
    await asyncio.wait_for(consumer._drain_messages(fetcher), timeout=10)


async def test_a_fetched_batch_reaches_the_streams_in_order_under_one_wait() -> None:
    consumer, fetcher, handed, per_wait = _consumer([[0, 1, 2, 3, 4], [5, 6]])
    await _drain(consumer, fetcher)
    assert handed == [0, 1, 2, 3, 4, 5, 6]
    # One wait a fetched batch (faust's own loop waits once a message), none for an empty one.
    assert per_wait == [5, 2]
    assert consumer._read_offset[TOPIC] == 6


async def test_records_below_the_read_offset_are_not_handed_over_again() -> None:
    # After a fetch that overlaps what was already read (a retried fetch), only the new ones.
    consumer, fetcher, handed, _ = _consumer([[0, 1, 2], [0, 1, 3]])
    await _drain(consumer, fetcher)
    assert handed == [0, 1, 2, 3]


async def test_a_flow_suspension_stops_handing_over_the_rest_of_the_batch() -> None:
    consumer, fetcher, handed, _ = _consumer([[0, 1, 2, 3, 4]])
    original: Callable[[FakeMessage], Awaitable[None]] = consumer.callback

    async def suspending(message: FakeMessage) -> None:
        await original(message)
        if message.offset == 1:
            # A rebalance starts while the stream takes this message in.
            consumer.suspend_flow.set()
            await asyncio.sleep(0.05)

    consumer.callback = suspending
    await _drain(consumer, fetcher)
    assert handed == [0, 1], "messages were handed over after the flow was suspended"
    # The interrupted message does not count as read: the seek after the rebalance decides.
    assert consumer._read_offset[TOPIC] == 0


async def test_a_suspended_flow_waits_in_the_fetch_without_spinning() -> None:
    consumer, fetcher, handed, _ = _consumer([])
    calls = 0

    async def getmany(timeout: float) -> AsyncIterator[tuple[TP, FakeMessage]]:
        # As faust's getmany: while the flow is suspended, wait for it to resume.
        nonlocal calls
        calls += 1
        if calls > 1:
            fetcher._stopped.set()
            return
        await consumer.can_resume_flow.wait()
        for offset in (0, 1):
            yield TOPIC, FakeMessage(offset)

    consumer.getmany = getmany
    consumer.suspend_flow.set()  # a rebalance is under way
    loop_task = asyncio.ensure_future(_drain(consumer, fetcher))
    await asyncio.sleep(0.2)
    assert calls == 1, f"the loop fetched {calls} times while the flow was suspended"
    consumer.suspend_flow.clear()
    consumer.can_resume_flow.set()
    await loop_task
    assert handed == [0, 1]
