"""Outbound records: routing events and dead letters round-trip through JSON."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from schemas.entities import Entity, LabelScore
from schemas.events import (
    DeadLetter,
    DeadLetterReason,
    ModelRef,
    RouteReason,
    RoutingEvent,
    SourceRef,
)
from schemas.messages import MessageKind

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def _event(**overrides: object) -> RoutingEvent:
    fields: dict[str, object] = {
        "message_id": "m1",
        "kind": MessageKind.ARTICLE,
        "category": "Business",
        "confidence": 0.9,
        "top_k": [LabelScore(label="Business", score=0.9)],
        "entities": [Entity(type="ORG", text="Acme", start=0, end=4, score=0.8)],
        "route": "desk.business",
        "reasons": [RouteReason(rule="category:Business", detail="category 'Business'")],
        "classifier": ModelRef(name="clf", version="v1", backend="onnx-int8"),
        "received_at": NOW,
        "routed_at": NOW,
        "processing_ms": 1.5,
        "source": SourceRef(topic="in", partition=0, offset=7),
    }
    fields.update(overrides)
    return RoutingEvent.model_validate(fields)


def test_routing_event_round_trips_through_json() -> None:
    event = _event()
    assert RoutingEvent.model_validate_json(event.model_dump_json()) == event


def test_routing_event_needs_at_least_one_reason() -> None:
    with pytest.raises(ValidationError, match="reasons"):
        _event(reasons=[])


def test_routing_event_confidence_is_a_probability() -> None:
    with pytest.raises(ValidationError, match="confidence"):
        _event(confidence=1.5)


def test_dead_letter_round_trips_and_keeps_the_reason_as_a_string() -> None:
    dead = DeadLetter(
        reason=DeadLetterReason.INVALID_JSON,
        error_class="JSONDecodeError",
        error_message="Expecting value",
        source=SourceRef(topic="in", partition=1, offset=2),
        payload_b64="e30=",
        payload_size=2,
        first_seen_at=NOW,
    )
    wire = dead.model_dump_json()
    assert '"reason":"invalid_json"' in wire
    assert DeadLetter.model_validate_json(wire) == dead
