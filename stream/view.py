"""Readable rich tables of routing events and dead letters, for `tail` and the demo."""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence

from pydantic import ValidationError
from rich.table import Table

from schemas.events import DeadLetter, RoutingEvent
from stream.topics import ReadRecord

_TEXT_WIDTH = 48


def decode_outputs(
    records: Iterable[ReadRecord], routed_topic: str
) -> tuple[list[RoutingEvent], list[DeadLetter], list[ReadRecord]]:
    """Split records of the routed and dead-letter topics into events, dead letters and
    records that are neither (written by something else)."""
    events: list[RoutingEvent] = []
    dead: list[DeadLetter] = []
    unknown: list[ReadRecord] = []
    for record in records:
        try:
            if record.topic == routed_topic:
                events.append(RoutingEvent.model_validate_json(record.value or b""))
            else:
                dead.append(DeadLetter.model_validate_json(record.value or b""))
        except ValidationError:
            unknown.append(record)
    return events, dead, unknown


def origin_id(dead: DeadLetter) -> str | None:
    """The id of the message a dead letter came from: as parsed, else the record's Kafka key
    (producers key records by message id, so even unparseable ones can be traced)."""
    if dead.message_id:
        return dead.message_id
    if dead.key_b64 is None:
        return None
    return base64.b64decode(dead.key_b64).decode("utf-8", errors="replace")


def _short(text: str, width: int = _TEXT_WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def events_table(events: Sequence[RoutingEvent], *, title: str = "Routed events") -> Table:
    """One row per event: id, kind, category and confidence, entities, route, deciding rule."""
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("message", style="cyan", no_wrap=True)
    table.add_column("kind")
    table.add_column("category")
    table.add_column("conf", justify="right")
    table.add_column("entities")
    table.add_column("route", style="bold green")
    table.add_column("reason")
    table.add_column("ms", justify="right")
    for e in events:
        entities = ", ".join(f"{x.type}:{x.text}" for x in e.entities)
        table.add_row(
            e.message_id,
            e.kind.value,
            e.category,
            f"{e.confidence:.2f}",
            _short(entities) or "-",
            e.route,
            _short(e.reasons[0].rule, 28),
            f"{e.processing_ms:.0f}",
        )
    return table


def dead_letters_table(dead: Sequence[DeadLetter], *, title: str = "Dead letters") -> Table:
    """One row per dead letter: where it came from, the reason and the start of the error."""
    table = Table(title=title, expand=False)
    table.add_column("source", style="cyan", no_wrap=True)
    table.add_column("message / key")
    table.add_column("reason", style="bold red")
    table.add_column("error")
    table.add_column("bytes", justify="right")
    for d in dead:
        s = d.source
        table.add_row(
            f"{s.topic}/{s.partition}@{s.offset}",
            origin_id(d) or "-",
            d.reason.value,
            _short(d.error_message, 60),
            str(d.payload_size),
        )
    return table
