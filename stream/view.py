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


def _kind(e: RoutingEvent) -> str:
    # The pipeline is named only when it says more than the kind (a pipelines file may give
    # one pipeline several kinds; without a file every kind is in "default").
    kind = e.kind.value
    return kind if e.pipeline in (kind, "default") else f"{kind}/{e.pipeline}"


def _labels(e: RoutingEvent) -> str:
    if e.labels:
        return ", ".join(f"{x.label} {x.score:.2f}" for x in e.labels)
    if e.schema_version >= 2:
        # A multi-label model whose labels all stayed under their thresholds.
        return f"- (best {e.category} {e.confidence:.2f})"
    return f"{e.category} {e.confidence:.2f}"


def _text(e: RoutingEvent) -> str:
    t = e.model_text
    if t is None:
        return "-"
    parts = [t.language or "", f"{t.length}c", "cleaned" if t.cleaned else ""]
    return " ".join(p for p in parts if p)


def events_table(events: Sequence[RoutingEvent], *, title: str = "Routed events") -> Table:
    """One row per event: id, kind (and pipeline), labels with scores, entities, every route,
    the deciding rule, the text the models read (language, length, cleaned), attributes when
    any event has some, and latency."""
    with_attributes = any(e.attributes for e in events)
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("message", style="cyan", no_wrap=True)
    table.add_column("kind")
    table.add_column("labels")
    table.add_column("entities")
    table.add_column("routes", style="bold green", overflow="fold")
    table.add_column("reason")
    table.add_column("text")
    if with_attributes:
        table.add_column("attributes")
    table.add_column("ms", justify="right")
    for e in events:
        entities = ", ".join(f"{x.type}:{x.text}" for x in e.entities)
        routes = ", ".join(r.queue for r in e.routes) or e.route
        row = [
            e.message_id,
            _kind(e),
            _short(_labels(e), 40),
            _short(entities, 40) or "-",
            routes,
            _short(e.reasons[0].rule, 28),
            _text(e),
        ]
        if with_attributes:
            row.append(", ".join(f"{k}={v.label}" for k, v in e.attributes.items()) or "-")
        table.add_row(*row, f"{e.processing_ms:.0f}")
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
