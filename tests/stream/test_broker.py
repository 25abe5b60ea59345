"""The embedded tansu broker and the Kafka plumbing around it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker, free_port, probe_kafka, resolve_broker_bin
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings
from stream.errors import BrokerBinaryNotFoundError, BrokerStartError, BrokerUnavailableError
from stream.topics import OutboundRecord, ensure_topics, produce, read_topics


def test_resolve_broker_bin_finds_an_executable_tansu() -> None:
    path = resolve_broker_bin()
    assert path.is_file()
    assert os.access(path, os.X_OK)
    assert "tansu" in path.name


def test_resolve_broker_bin_rejects_a_configured_file_that_is_not_executable(
    tmp_path: Path,
) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("not a binary")
    with pytest.raises(BrokerBinaryNotFoundError, match="not an executable"):
        resolve_broker_bin(EmbeddedBrokerSettings(binary=fake))


def test_probe_kafka_is_false_when_nothing_listens() -> None:
    assert probe_kafka(f"127.0.0.1:{free_port()}", timeout_s=1.0) is False


@pytest.mark.integration
def test_embedded_broker_starts_answers_kafka_and_stops_cleanly(tmp_path: Path) -> None:
    broker = EmbeddedBroker(EmbeddedBrokerSettings(port=0, log_file=tmp_path / "b.log"))
    with broker:
        assert broker.running()
        assert probe_kafka(broker.bootstrap)
    assert not broker.running()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", broker.port)) != 0


@pytest.mark.integration
def test_embedded_broker_refuses_a_port_that_is_in_use(kafka_broker: str) -> None:
    port = int(kafka_broker.rsplit(":", 1)[1])
    with pytest.raises(BrokerStartError, match="already in use"):
        EmbeddedBroker(EmbeddedBrokerSettings(port=port)).start()


@pytest.mark.integration
async def test_records_round_trip_through_the_broker_with_keys(
    broker_settings: BrokerSettings, unique_topics: TopicSettings
) -> None:
    topic = unique_topics.email
    await ensure_topics(broker_settings, [topic], partitions=3)
    sent = [OutboundRecord(topic, f"k{i}".encode(), f"v{i}".encode()) for i in range(20)]
    assert await produce(broker_settings, sent) == 20

    got = await read_topics(broker_settings, [topic], idle_s=1.0)

    assert sorted((r.key, r.value) for r in got) == sorted((r.key, r.value) for r in sent)
    assert {r.partition for r in got} <= {0, 1, 2}


@pytest.mark.integration
async def test_ensure_topics_creates_only_missing_topics(
    broker_settings: BrokerSettings, unique_topics: TopicSettings
) -> None:
    await ensure_topics(broker_settings, [unique_topics.email], partitions=2)
    # A second call that includes the existing topic must neither fail nor recreate it.
    await ensure_topics(broker_settings, [unique_topics.email, unique_topics.ticket], 4)
    await produce(broker_settings, [OutboundRecord(unique_topics.email, b"k", b"v")])

    got = await read_topics(broker_settings, [unique_topics.email], idle_s=0.5)

    assert [r.value for r in got] == [b"v"]


async def test_producing_without_a_broker_raises_a_clear_error() -> None:
    nowhere = BrokerSettings(bootstrap_servers=f"127.0.0.1:{free_port()}", request_timeout_s=2)
    with pytest.raises(BrokerUnavailableError, match="textroute broker"):
        await produce(nowhere, [OutboundRecord("t", None, b"v")])
