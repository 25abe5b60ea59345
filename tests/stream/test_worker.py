"""BatchProcessor: every inbound record becomes exactly one routing event or dead letter."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

from schemas.entities import Classification
from schemas.events import DeadLetterReason, RoutingEvent
from schemas.messages import MessageKind
from stream.config import TopicSettings
from stream.inference import InferenceSettings, ItemError, Predictor, load_predictor
from stream.routing import Router, parse_rules
from stream.samples import sample_records
from stream.worker import BatchProcessor, InboundRecord, Limits, ModelSet

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = """
default_queue: triage
review: {queue: human-review, min_confidence: 0.0}
categories: {World: desk.world, Sports: desk.sports, Business: desk.business}
"""


@pytest.fixture(scope="module")
def classifier(tiny_classifier_artifact: Path) -> Predictor:
    return load_predictor(tiny_classifier_artifact)


@pytest.fixture(scope="module")
def ner(tiny_ner_artifact: Path) -> Predictor:
    return load_predictor(tiny_ner_artifact)


def _processor(
    classifier: object, ner: object | None = None, limits: Limits | None = None
) -> BatchProcessor:
    models = ModelSet(classifier, ner)  # type: ignore[arg-type]
    return BatchProcessor(lambda: models, Router(parse_rules(RULES)), TOPICS, limits)


def _record(
    kind: MessageKind, value: bytes | None, offset: int = 0, key: bytes = b"k"
) -> InboundRecord:
    return InboundRecord(
        topic=TOPICS.topic_for(kind),
        partition=1,
        offset=offset,
        key=key,
        value=value,
        timestamp=NOW,
        received_at=NOW,
    )


def _article(message_id: str, body: str, headline: str = "") -> bytes:
    return json.dumps(
        {"id": message_id, "headline": headline, "body": body, "source": "Reuters"}
    ).encode()


def test_valid_messages_of_every_kind_become_events_with_models_and_source(
    classifier: Predictor, ner: Predictor
) -> None:
    records = [
        _record(r.kind, r.value, offset=i, key=r.key.encode())
        for i, r in enumerate(sample_records(9, seed=3))
    ]

    result = _processor(classifier, ner).process(records)

    assert result.dead_letters == []
    assert [e.message_id for e in result.events] == [f"msg-{i:06d}" for i in range(9)]
    assert {e.kind for e in result.events} == set(MessageKind)
    for event, record in zip(result.events, records, strict=True):
        assert event.category in {"World", "Sports", "Business", "Sci/Tech"}
        assert event.top_k[0].label == event.category
        assert event.classifier.name == "tiny-topics"
        assert event.ner is not None and event.ner.name == "tiny-ner"
        assert event.source.topic == record.topic and event.source.offset == record.offset
        assert event.reasons and event.route in {
            "desk.world",
            "desk.sports",
            "desk.business",
            "triage",
        }
        assert event.processing_ms >= 0


def test_entities_are_spans_of_the_text_the_models_see(
    classifier: Predictor, ner: Predictor
) -> None:
    text = "john smith visited paris for google"
    result = _processor(classifier, ner).process(
        [_record(MessageKind.ARTICLE, _article("a1", text, headline="reuters said"))]
    )

    (event,) = result.events
    model_text = "reuters said\n" + text
    assert event.entities, "the tiny tagger is trained on exactly this sentence pattern"
    for entity in event.entities:
        assert model_text[entity.start : entity.end] == entity.text


def test_without_an_ner_model_events_have_no_entities(classifier: Predictor) -> None:
    result = _processor(classifier).process(
        [_record(MessageKind.ARTICLE, _article("a1", "john visited paris"))]
    )
    assert result.events[0].entities == [] and result.events[0].ner is None


HUGE = _article("big", "word " * 50)
MALFORMED = {
    "invalid-json": (b'{"id": "x1", "body": ', DeadLetterReason.INVALID_JSON, None),
    "tombstone": (None, DeadLetterReason.INVALID_JSON, None),
    "not-utf8": (b"\xff\xfe{\x00}\x00", DeadLetterReason.NOT_UTF8, None),
    "json-array": (b"[1, 2]", DeadLetterReason.SCHEMA_ERROR, None),
    "missing-body": (b'{"id": "x2", "source": "AP"}', DeadLetterReason.SCHEMA_ERROR, "x2"),
    "wrong-type": (b'{"id": "x3", "source": "AP", "body": 7}', DeadLetterReason.SCHEMA_ERROR, "x3"),
    "blank-text": (_article("x4", "   "), DeadLetterReason.EMPTY_TEXT, "x4"),
    "text-too-long": (_article("x5", "word " * 12), DeadLetterReason.TEXT_TOO_LONG, "x5"),
    "message-too-large": (HUGE, DeadLetterReason.MESSAGE_TOO_LARGE, None),  # never parsed
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_record_becomes_a_dead_letter_with_its_reason_and_bytes(
    classifier: Predictor, case: str
) -> None:
    value, reason, message_id = MALFORMED[case]
    limits = Limits(max_message_bytes=200, max_text_chars=40)
    record = _record(MessageKind.ARTICLE, value, offset=42, key=b"the-key")
    good = _record(MessageKind.ARTICLE, _article("ok", "stock market profit"), offset=43)

    result = _processor(classifier, limits=limits).process([record, good])

    assert [e.message_id for e in result.events] == ["ok"]
    (dead,) = result.dead_letters
    assert dead.reason is reason
    assert dead.message_id == message_id
    assert base64.b64decode(dead.payload_b64) == (value or b"")
    assert dead.payload_size == len(value or b"")
    assert base64.b64decode(dead.key_b64 or "") == b"the-key"
    assert (dead.source.topic, dead.source.partition, dead.source.offset) == (
        TOPICS.article,
        1,
        42,
    )
    assert dead.first_seen_at == NOW and dead.kind is MessageKind.ARTICLE
    assert dead.error_message
    if reason is DeadLetterReason.NOT_UTF8:
        assert dead.payload_preview is None
    elif value:
        assert dead.payload_preview == value.decode()[:512]


def test_a_record_from_an_unknown_topic_is_dead_lettered(classifier: Predictor) -> None:
    record = InboundRecord("elsewhere", 0, 5, None, b"{}", None, NOW)
    result = _processor(classifier).process([record])
    assert result.dead_letters[0].reason is DeadLetterReason.UNKNOWN_TOPIC
    assert result.dead_letters[0].kind is None


def test_a_mixed_batch_yields_exactly_one_output_per_record(
    classifier: Predictor, ner: Predictor
) -> None:
    samples = list(sample_records(120, malformed_ratio=0.25, seed=7, huge_text_chars=25_000))
    records = [
        _record(s.kind, s.value, offset=i, key=s.key.encode()) for i, s in enumerate(samples)
    ]

    result = _processor(classifier, ner).process(records)

    expected_bad = {s.key: s.expected_reason for s in samples if s.expected_reason}
    assert len(result.events) + len(result.dead_letters) == len(samples)
    assert {e.message_id for e in result.events} == {s.key for s in samples} - set(expected_bad)
    got_bad = {base64.b64decode(d.key_b64 or "").decode(): d.reason for d in result.dead_letters}
    assert got_bad == expected_bad


class _PoisonedClassifier:
    """The real tiny classifier, except that a text containing POISON crashes the call."""

    def __init__(self, inner: Predictor) -> None:
        self._inner = inner
        self.manifest = inner.manifest
        self.backend_name = inner.backend_name
        self.calls = 0

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        self.calls += 1
        if any("POISON" in str(t) for t in texts):
            raise RuntimeError("kernel exploded")
        return self._inner.classify(texts)


def test_a_text_that_crashes_the_model_is_dead_lettered_alone(classifier: Predictor) -> None:
    poisoned = _PoisonedClassifier(classifier)
    records = [
        _record(MessageKind.ARTICLE, _article(f"a{i}", body), offset=i)
        for i, body in enumerate(["stock profit", "POISON pill", "team win cup"])
    ]

    result = _processor(poisoned).process(records)

    assert [e.message_id for e in result.events] == ["a0", "a2"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.INFERENCE_ERROR
    assert dead.message_id == "a1"
    assert "RuntimeError: kernel exploded" in dead.error_message
    assert poisoned.calls == 1 + len(records), "one batch call, then one call per item"


def test_item_errors_of_the_inference_layer_keep_their_reason(
    tiny_classifier_artifact: Path,
) -> None:
    strict = load_predictor(tiny_classifier_artifact, InferenceSettings(max_chars=30))
    records = [
        _record(MessageKind.ARTICLE, _article("short", "stock profit"), offset=0),
        _record(MessageKind.ARTICLE, _article("long", "stock market profit " * 3), offset=1),
    ]

    result = _processor(strict).process(records)

    assert [e.message_id for e in result.events] == ["short"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.TEXT_TOO_LONG
    assert dead.error_class == "ItemError"
    assert dead.error_message.startswith("classifier:")


def test_outbound_records_are_keyed_by_message_id_or_record_coordinates(
    classifier: Predictor,
) -> None:
    records = [
        _record(MessageKind.ARTICLE, _article("good-1", "stock profit"), offset=0),
        _record(MessageKind.ARTICLE, b"not json", offset=9),
    ]
    result = _processor(classifier).process(records)

    out = {r.topic: r for r in result.outbound(TOPICS)}

    assert out[TOPICS.routed].key == b"good-1"
    assert RoutingEvent.model_validate_json(out[TOPICS.routed].value).message_id == "good-1"
    assert out[TOPICS.dead_letter].key == f"{TOPICS.article}/1/9".encode()


def test_json_nested_deeper_than_the_parser_allows_is_dead_lettered(
    classifier: Predictor,
) -> None:
    record = _record(MessageKind.EMAIL, b"[" * 100_000, offset=3)
    result = _processor(classifier).process([record])
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.INVALID_JSON


class _OddClassifier:
    """The real tiny classifier, except that texts containing ODD get an impossible score."""

    def __init__(self, inner: Predictor) -> None:
        self._inner = inner
        self.manifest = inner.manifest
        self.backend_name = inner.backend_name

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        out = self._inner.classify(texts)
        return [
            Classification.model_construct(label="World", score=1.5, top_k=[])
            if "ODD" in str(text)
            else result
            for text, result in zip(texts, out, strict=True)
        ]


def test_an_output_that_cannot_be_built_costs_only_its_own_record(
    classifier: Predictor,
) -> None:
    records = [
        _record(MessageKind.ARTICLE, _article(f"a{i}", body), offset=i)
        for i, body in enumerate(["stock profit", "ODD output", "team win cup"])
    ]

    result = _processor(_OddClassifier(classifier)).process(records)

    assert [e.message_id for e in result.events] == ["a0", "a2"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.UNEXPECTED_ERROR
    assert dead.message_id == "a1" and dead.error_class == "ValidationError"


def test_tagging_beside_the_classifier_gives_the_same_events_as_in_turn(
    classifier: Predictor, ner: Predictor
) -> None:
    samples = list(sample_records(40, malformed_ratio=0.2, seed=21))
    records = [
        _record(s.kind, s.value, offset=i, key=s.key.encode()) for i, s in enumerate(samples)
    ]
    records.append(_record(MessageKind.ARTICLE, _article("odd", "ODD output"), offset=99))
    models = ModelSet(_OddClassifier(classifier), ner)
    router = Router(parse_rules(RULES))
    in_turn = BatchProcessor(lambda: models, router, TOPICS, clock=lambda: NOW)
    beside = BatchProcessor(lambda: models, router, TOPICS, parallel_models=True, clock=lambda: NOW)
    try:
        a, b = in_turn.process(records), beside.process(records)
    finally:
        beside.close()

    assert a.events == b.events
    assert [d.model_dump(exclude={"error_message"}) for d in a.dead_letters] == [
        d.model_dump(exclude={"error_message"}) for d in b.dead_letters
    ]
    assert b.ner_s > 0
