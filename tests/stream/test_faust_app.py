"""RouterAgent on its own: inputs acked only after every output is acknowledged, a failed
delivery acks nothing, and the consumer-lag gauge."""

from __future__ import annotations

import asyncio
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
    """An output topic whose sends resolve when the test says so."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.futures: list[asyncio.Future[None]] = []

    async def send(self, *, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        self.sent.append((key, value))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


class FakeStream:
    def __init__(self) -> None:
        self.acked: list[Any] = []

    async def ack(self, event: Any) -> bool:
        self.acked.append(event)
        return True


class FakeEvent:
    def __init__(self, offset: int) -> None:
        self.offset = offset


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
