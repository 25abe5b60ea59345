"""The stream's CLI commands: schemas, produce and tail."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from schemas.events import (
    DeadLetter,
    DeadLetterReason,
    ModelRef,
    RouteReason,
    RoutingEvent,
    SourceRef,
)
from schemas.jsonschema import WIRE_SCHEMAS
from schemas.messages import MessageKind
from stream.commands import register
from stream.config import BrokerSettings, TopicSettings
from stream.errors import FieldMappingError
from stream.topics import OutboundRecord, ensure_topics, produce, read_topics

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _env(broker: BrokerSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        **topics.as_env(),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "COLUMNS": "200",
    }


def test_schemas_command_writes_one_schema_per_wire_message(
    cli: typer.Typer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, ["schemas", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}.schema.json" for name in WIRE_SCHEMAS
    )


def test_an_invalid_setting_from_the_environment_is_a_clear_error(cli: typer.Typer) -> None:
    result = CliRunner().invoke(
        cli, ["produce", "--samples", "1"], env={"TEXTROUTE_TOPIC_PARTITIONS": "zero"}
    )
    assert result.exit_code != 0
    assert "TopicSettings" in str(result.exception) and "partitions" in str(result.exception)


@pytest.mark.integration
def test_produce_sends_samples_to_the_topic_of_each_kind(
    cli: typer.Typer, broker_settings: BrokerSettings, unique_topics: TopicSettings
) -> None:
    result = CliRunner().invoke(
        cli,
        ["produce", "--samples", "12", "--malformed-ratio", "0", "--id-prefix", "cli"],
        env=_env(broker_settings, unique_topics),
    )
    assert result.exit_code == 0, result.output

    inbound = list(unique_topics.inbound())
    got = asyncio.run(read_topics(broker_settings, inbound, idle_s=0.5))

    by_topic = {t: sorted(r.key or b"" for r in got if r.topic == t) for t in inbound}
    assert by_topic[unique_topics.email] == [f"cli-{i:06d}".encode() for i in (0, 3, 6, 9)]
    assert len(got) == 12


@pytest.mark.integration
def test_produce_file_sends_csv_rows_mapped_onto_the_kind_and_skips_invalid_ones(
    cli: typer.Typer,
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    tmp_path: Path,
) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text(
        "Ref,subject,Description,priority\n"
        'T-1,Login,"It fails\nsince Monday",high\n'
        "T-2,Refund,Charged twice,medium\n"
        "T-3,Other,Text,bogus\n",
        encoding="utf-8",
    )
    args = [
        "produce", "--kind", "ticket", "--file", str(path), "--id-column", "Ref",
        "--map", "body=Description", "--set", "customer=helpdesk",
        "--value-map", "priority:medium=normal",
    ]  # fmt: skip
    result = CliRunner().invoke(cli, args, env=_env(broker_settings, unique_topics))
    assert result.exit_code == 0, result.output
    assert "sent 2 ticket messages" in result.output and "skipped 1" in result.output
    assert "line 5: priority" in result.output

    got = asyncio.run(read_topics(broker_settings, list(unique_topics.inbound()), idle_s=0.5))

    assert {r.topic for r in got} == {unique_topics.ticket}
    assert sorted((r.key or b"", json.loads(r.value or b"")) for r in got) == [
        (b"T-1", {"id": "T-1", "customer": "helpdesk", "subject": "Login",
                  "body": "It fails\nsince Monday", "priority": "high"}),
        (b"T-2", {"id": "T-2", "customer": "helpdesk", "subject": "Refund",
                  "body": "Charged twice", "priority": "normal"}),
    ]  # fmt: skip


def test_produce_file_without_a_required_field_fails_before_reaching_the_broker(
    cli: typer.Typer, tmp_path: Path
) -> None:
    path = tmp_path / "tickets.csv"
    path.write_text("subject,body\nLogin,It fails\n", encoding="utf-8")
    result = CliRunner().invoke(
        cli,
        ["produce", "--kind", "ticket", "--file", str(path)],
        # Nothing listens there: contacting the broker would fail with another error.
        env={"TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": "127.0.0.1:9"},
    )
    assert isinstance(result.exception, FieldMappingError)
    assert "need customer" in str(result.exception) and "has: subject, body" in str(
        result.exception
    )


@pytest.mark.integration
def test_tail_shows_routed_events_and_dead_letters_as_tables(
    cli: typer.Typer, broker_settings: BrokerSettings, unique_topics: TopicSettings
) -> None:
    event = RoutingEvent(
        message_id="tail-1",
        kind=MessageKind.TICKET,
        category="Business",
        confidence=0.87,
        route="desk.business",
        reasons=[RouteReason(rule="category:Business", detail="d")],
        classifier=ModelRef(name="c", version="1"),
        received_at=NOW,
        routed_at=NOW,
        processing_ms=3.0,
        source=SourceRef(topic=unique_topics.ticket, partition=0, offset=0),
    )
    dead = DeadLetter(
        reason=DeadLetterReason.INVALID_JSON,
        error_class="InputRejected",
        error_message="value is not JSON",
        source=SourceRef(topic=unique_topics.email, partition=2, offset=5),
        payload_b64="e30=",
        payload_size=2,
        first_seen_at=NOW,
    )

    async def seed() -> None:
        await ensure_topics(broker_settings, unique_topics.all_topics(), 1)
        await produce(
            broker_settings,
            [
                OutboundRecord(unique_topics.routed, b"tail-1", event.model_dump_json().encode()),
                OutboundRecord(unique_topics.dead_letter, None, dead.model_dump_json().encode()),
            ],
        )

    asyncio.run(seed())
    result = CliRunner().invoke(
        cli, ["tail", "--no-follow", "--idle", "0.5"], env=_env(broker_settings, unique_topics)
    )

    assert result.exit_code == 0, result.output
    assert "Routed events (1 seen)" in result.output
    assert (
        "tail-1" in result.output and "desk.business" in result.output and "0.87" in result.output
    )
    assert "Dead letters (1 seen)" in result.output and "invalid_json" in result.output


def test_worker_model_flag_serves_one_artifact_in_both_roles(
    cli: typer.Typer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import stream.worker

    seen: list[object] = []
    monkeypatch.setattr(stream.worker, "run_worker", seen.append)
    result = CliRunner().invoke(cli, ["worker", "--model", str(tmp_path / "joint")])
    assert result.exit_code == 0, result.output
    (settings,) = seen
    assert settings.model_dirs() == (tmp_path / "joint", tmp_path / "joint")  # type: ignore[attr-defined]
