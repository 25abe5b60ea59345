"""RouterAgent on its own: inputs acked only after every output is acknowledged, a failed
delivery acks nothing, its batch loop (partial batches, in-order delivery, a quiet topic, a
failed inference), and the consumer-lag gauge."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import faust
import pytest
from prometheus_client import CollectorRegistry

from stream.config import WorkerSettings
from stream.faust_app import RouterAgent
from stream.metrics import StreamMetrics
from stream.processor import BatchProcessor, BatchResult, InboundRecord


class FakeTopic:
    """An output topic whose sends resolve when the test says so; once `acknowledging`, the
    broker acknowledges each at once, but the first `slow_first` after 0.3 s."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.futures: list[asyncio.Future[None]] = []
        self.acknowledging = False
        self.slow_first = 0

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self.futures.append(future)
        if self.acknowledging:
            delay = 0.3 if len(self.sent) <= self.slow_first else 0.0
            loop.call_later(delay, future.set_result, None)
        return future


class FakeStream:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


class FakeMessage:
    def __init__(self, offset: int) -> None:
        self.topic, self.partition, self.offset = "t.email", 0, offset
        self.key, self.value, self.timestamp = b"k", b"not json", None

    def incref(self) -> None:
        """faust's hold on an input until it is acked; nothing to hold here."""


class FakeEvent:
    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.message = FakeMessage(offset)


def _agent(settings: WorkerSettings) -> tuple[RouterAgent, dict[str, FakeTopic]]:
    app = faust.App("agent-test", broker="kafka://localhost:1")
    metrics = StreamMetrics(CollectorRegistry())
    executor = ThreadPoolExecutor(1)
    agent = RouterAgent(app, settings, processor=None, executor=executor, metrics=metrics)  # type: ignore[arg-type]
    topics = {name: FakeTopic() for name in agent.outputs}
    agent.outputs = topics  # type: ignore[assignment]
    return agent, topics


def _record(agent: RouterAgent, offset: int) -> InboundRecord:
    now = datetime.now(timezone.utc)
    return InboundRecord(agent.settings.topics.email, 0, offset, b"k", b"not json", None, now)


def _dead_result(agent: RouterAgent, records: list[InboundRecord]) -> BatchResult:
    """The real processor's result for records that are all invalid JSON: no model runs."""
    processor = BatchProcessor.single(lambda: None, None, agent.settings.topics)  # type: ignore[arg-type,return-value]
    result = processor.process(records)
    assert len(result.outbound(agent.settings.topics)) == len(records)
    return result


async def test_inputs_are_acked_only_after_the_broker_acknowledged_every_output() -> None:
    agent, topics = _agent(WorkerSettings())
    records = [_record(agent, i) for i in range(3)]
    events = [FakeEvent(i) for i in range(3)]
    stream = FakeStream()
    delivery = asyncio.ensure_future(
        agent.deliver(stream, events, records, _dead_result(agent, records), 0.0)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    futures = topics[agent.settings.topics.dead_letter].futures
    assert len(futures) == 3
    futures[0].set_result(None)
    futures[1].set_result(None)
    await asyncio.sleep(0.05)
    assert stream.acked == [], "an input was acked before all outputs were acknowledged"
    futures[2].set_result(None)
    await delivery
    assert stream.acked == events


async def test_a_failed_output_acks_no_input_and_raises() -> None:
    agent, topics = _agent(WorkerSettings())
    records = [_record(agent, i) for i in range(2)]
    events = [FakeEvent(i) for i in range(2)]
    stream = FakeStream()
    delivery = asyncio.ensure_future(
        agent.deliver(stream, events, records, _dead_result(agent, records), 0.0)  # type: ignore[arg-type]
    )
    await asyncio.sleep(0.05)
    futures = topics[agent.settings.topics.dead_letter].futures
    futures[0].set_result(None)
    futures[1].set_exception(RuntimeError("broker said no"))
    with pytest.raises(RuntimeError, match="broker said no"):
        await delivery
    assert stream.acked == []


class FakeTP:
    def __init__(self, topic: str, partition: int) -> None:
        self.topic, self.partition = topic, partition


class FakeConsumer:
    def __init__(self, highwaters: dict[tuple[str, int], int | None]) -> None:
        self.highwaters = highwaters

    def assignment(self) -> set[FakeTP]:
        return {FakeTP(t, p) for t, p in self.highwaters}

    def highwater(self, tp: FakeTP) -> int | None:
        return self.highwaters[(tp.topic, tp.partition)]


def test_the_lag_gauge_is_the_high_watermark_minus_the_next_offset_to_process() -> None:
    agent, _ = _agent(WorkerSettings())
    agent.app.consumer = FakeConsumer({("t.email", 0): 120, ("t.email", 1): None})  # type: ignore[assignment]
    agent.positions[("t.email", 0)] = 100
    agent.update_lag()
    gauge = agent.metrics.consumer_lag
    assert gauge.labels("t.email", "0")._value.get() == 20
    agent.positions[("t.email", 0)] = 130  # a stale high watermark never makes lag negative
    agent.update_lag()
    assert gauge.labels("t.email", "0")._value.get() == 0


def test_the_producer_gathers_a_batchs_outputs_for_the_configured_linger(tmp_path: Any) -> None:
    from stream.config import BrokerSettings
    from stream.faust_app import create_app

    settings = WorkerSettings(
        producer_linger_ms=7,
        review_store=False,
        data_dir=tmp_path,
        broker=BrokerSettings(bootstrap_servers="localhost:1", idempotence="off"),
    )
    processor = BatchProcessor.single(lambda: None, None, settings.topics)  # type: ignore[arg-type,return-value]
    app = create_app(settings, processor, ThreadPoolExecutor(1), StreamMetrics(CollectorRegistry()))
    # What aiokafka is given: records wait up to 7 ms for company in one produce request.
    assert app.producer._settings_default()["linger_ms"] == 7


# ---- the agent's batch loop ------------------------------------------------------------------


class BatchStream(FakeStream):
    """A stream whose take_events yields the given batches as fast as they are asked for (a
    backlog), noting when each is taken; after the last it waits, like a quiet topic."""

    def __init__(self, sizes: list[int], clock: list[tuple[str, int]]) -> None:
        super().__init__()
        offsets = iter(range(10_000))
        self.batches = [[FakeEvent(next(offsets)) for _ in range(n)] for n in sizes]
        self.clock = clock

    async def take_events(self, max_: int, within: float) -> Any:
        for number, batch in enumerate(self.batches):
            self.clock.append(("take", number))
            yield batch
        await asyncio.Event().wait()


class TimedProcessor:
    """The real processor (every record is invalid JSON: a dead letter each), taking
    `seconds` a batch and noting when each batch starts and ends; batches in `fail` raise."""

    def __init__(self, agent: RouterAgent, clock: list[tuple[str, int]], seconds: float) -> None:
        self.inner = BatchProcessor.single(lambda: None, None, agent.settings.topics)  # type: ignore[arg-type,return-value]
        self.clock, self.seconds = clock, seconds
        self.calls = 0
        self.fail: set[int] = set()

    def process(self, records: list[InboundRecord]) -> BatchResult:
        number, self.calls = self.calls, self.calls + 1
        self.clock.append(("start", number))
        time.sleep(self.seconds)
        if number in self.fail:
            raise RuntimeError(f"batch {number} broke")
        result = self.inner.process(records)
        self.clock.append(("end", number))
        return result


def _looping_agent(
    sizes: list[int], seconds: float
) -> tuple[RouterAgent, dict[str, FakeTopic], BatchStream, TimedProcessor, list[tuple[str, int]]]:
    """An agent with batches of four, the worker's one-thread executor and a broker that
    acknowledges every output."""
    settings = WorkerSettings(batch_size=4)
    agent, topics = _agent(settings)
    clock: list[tuple[str, int]] = []
    processor = TimedProcessor(agent, clock, seconds)
    agent.processor = processor  # type: ignore[assignment]
    for topic in topics.values():
        topic.acknowledging = True
    return agent, topics, BatchStream(sizes, clock), processor, clock


async def _run_until_acked(agent: RouterAgent, stream: BatchStream, count: int) -> None:
    task = asyncio.ensure_future(agent.run(stream))  # type: ignore[arg-type]
    try:
        deadline = time.monotonic() + 20
        while len(stream.acked) < count:
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"only {len(stream.acked)} of {count} acked"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_after_a_partial_batch_the_next_is_taken_only_once_its_inference_is_done() -> None:
    agent, _, stream, _, clock = _looping_agent([3, 2, 3], seconds=0.05)
    await _run_until_acked(agent, stream, 8)
    for number in range(1, 3):
        assert clock.index(("take", number)) > clock.index(("end", number - 1)), clock


async def test_batches_are_acked_in_order_though_a_later_one_is_acknowledged_first() -> None:
    agent, topics, stream, _, _ = _looping_agent([4, 4, 4, 4, 2, 4], seconds=0.05)
    # The first batch's outputs are acknowledged last.
    dead_letters = topics[agent.settings.topics.dead_letter]
    dead_letters.slow_first = 4
    await _run_until_acked(agent, stream, 22)
    assert stream.acked == [e for batch in stream.batches for e in batch]
    assert len(dead_letters.sent) == 22


async def test_a_full_batch_is_delivered_though_no_further_message_arrives() -> None:
    agent, _, stream, _, _ = _looping_agent([4, 4, 4], seconds=0.05)
    await _run_until_acked(agent, stream, 12)


async def test_a_batch_whose_inference_fails_stops_the_agent_with_nothing_acked_from_it_on() -> (
    None
):
    agent, _, stream, processor, _ = _looping_agent([4] * 6, seconds=0.05)
    processor.fail = {3}
    with pytest.raises(RuntimeError, match="batch 3 broke"):
        await asyncio.wait_for(agent.run(stream), timeout=20)  # type: ignore[arg-type]
    assert stream.acked == [e for batch in stream.batches[:3] for e in batch]
