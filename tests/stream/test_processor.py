"""BatchProcessor: every inbound record becomes exactly one routing event or dead letter."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import pytest

from inference import InferenceSettings, ItemError, Predictor, load_predictor
from schemas.entities import Classification, Entity
from schemas.events import DeadLetter, DeadLetterReason, RoutingEvent
from schemas.messages import MessageKind
from stream.config import TopicSettings, WorkerSettings
from stream.model_set import ModelSet
from stream.processor import BatchProcessor, BatchResult, InboundRecord, Limits
from stream.routing import Router, parse_rules
from stream.samples import sample_records
from stream.topics import OutboundRecord

T = TypeVar("T")
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
    return BatchProcessor.single(lambda: models, Router(parse_rules(RULES)), TOPICS, limits)


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
    in_turn = BatchProcessor.single(lambda: models, router, TOPICS, clock=lambda: NOW)
    beside = BatchProcessor.single(
        lambda: models, router, TOPICS, parallel_models=True, clock=lambda: NOW
    )
    try:
        a, b = in_turn.process(records), beside.process(records)
    finally:
        beside.close()

    assert a.events == b.events
    assert [d.model_dump(exclude={"error_message"}) for d in a.dead_letters] == [
        d.model_dump(exclude={"error_message"}) for d in b.dead_letters
    ]
    assert b.ner_s > 0


def _outputs_are_wire_ready(result: BatchResult, limit: int = 1_000_000) -> list[OutboundRecord]:
    """Every outbound record, after checking it is one the producer can send as is."""
    out = result.outbound(TOPICS)
    for record in out:
        assert isinstance(record.key, bytes) and isinstance(record.value, bytes)
        assert len(record.key) + len(record.value) <= limit
        model = RoutingEvent if record.topic == TOPICS.routed else DeadLetter
        model.model_validate_json(record.value)
    return out


def test_an_id_that_is_not_valid_unicode_is_dead_lettered_by_coordinates_alone(
    classifier: Predictor,
) -> None:
    # json.loads turns the escape into a lone surrogate, which no UTF-8 key can carry.
    bad = b'{"id": "\\ud800", "body": "stock profit", "source": "AP"}'
    records = [
        _record(MessageKind.ARTICLE, _article("a0", "team win cup"), offset=0),
        _record(MessageKind.ARTICLE, bad, offset=1),
        _record(MessageKind.ARTICLE, _article("a2", "stock profit"), offset=2),
    ]

    result = _processor(classifier).process(records)

    out = _outputs_are_wire_ready(result)
    assert [r.key for r in out] == [b"a0", f"{TOPICS.article}/1/1".encode(), b"a2"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.SCHEMA_ERROR and dead.message_id is None
    assert base64.b64decode(dead.payload_b64) == bad


def test_a_text_that_is_not_valid_unicode_is_dead_lettered_before_any_model_call(
    classifier: Predictor,
) -> None:
    counting = _PoisonedClassifier(classifier)
    bad = b'{"id": "a1", "body": "john \\udc00 smith", "source": "AP"}'
    records = [
        _record(MessageKind.ARTICLE, bad, offset=1),
        _record(MessageKind.ARTICLE, _article("a2", "stock profit"), offset=2),
    ]

    result = _processor(counting).process(records)

    _outputs_are_wire_ready(result)
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.SCHEMA_ERROR and dead.message_id == "a1"
    assert "\\udc00" in dead.error_message
    assert counting.calls == 1, "refused before the models: no failing batch call, no retries"


class _SurrogateLabelClassifier(_OddClassifier):
    """The real tiny classifier, except that texts containing ODD get a label that is a lone
    surrogate: the event builds, but its JSON cannot be encoded as UTF-8."""

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        out = self._inner.classify(texts)
        return [
            Classification.model_construct(label="\ud800", score=0.5, top_k=[])
            if "ODD" in str(text)
            else result
            for text, result in zip(texts, out, strict=True)
        ]


def test_an_event_that_cannot_be_encoded_costs_only_its_own_record(
    classifier: Predictor,
) -> None:
    records = [
        _record(MessageKind.ARTICLE, _article(f"a{i}", body), offset=i)
        for i, body in enumerate(["stock profit", "ODD output", "team win cup"])
    ]

    result = _processor(_SurrogateLabelClassifier(classifier)).process(records)

    out = _outputs_are_wire_ready(result)
    assert [r.key for r in out] == [b"a0", b"a1", b"a2"]
    assert [e.message_id for e in result.events] == ["a0", "a2"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.UNEXPECTED_ERROR and dead.message_id == "a1"
    assert dead.error_class == "PydanticSerializationError"


class _RaisingClassifier(_OddClassifier):
    """The real tiny classifier, except that a text containing ODD raises `error`."""

    def __init__(self, inner: Predictor, error: Exception) -> None:
        super().__init__(inner)
        self.error = error

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        if any("ODD" in str(t) for t in texts):
            raise self.error
        return self._inner.classify(texts)


def test_a_huge_error_text_with_a_lone_surrogate_is_capped_and_escaped(
    classifier: Predictor,
) -> None:
    error = RuntimeError("\ud800" + "x" * 10_000_000)
    record = _record(MessageKind.ARTICLE, _article("a1", "ODD output"), offset=1)

    result = _processor(_RaisingClassifier(classifier, error)).process([record])

    (out,) = _outputs_are_wire_ready(result)
    assert len(out.value) < 8 * 1024
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.INFERENCE_ERROR and dead.message_id == "a1"
    assert dead.error_message.startswith("classifier: RuntimeError: \\ud800xxx")
    assert dead.error_message.endswith("\u2026")
    assert base64.b64decode(dead.payload_b64) == record.value, "the full dead letter, kept"


def test_a_large_rejected_payload_keeps_its_head_size_and_digest(classifier: Predictor) -> None:
    big = b"not json " * 1000
    small = b"not json"
    limits = Limits(max_message_bytes=4000, dead_letter_payload_bytes=100)
    records = [
        _record(MessageKind.EMAIL, big, offset=0, key=b"k" * 5000),
        _record(MessageKind.EMAIL, small, offset=1),
    ]

    result = _processor(classifier, limits=limits).process(records)

    _outputs_are_wire_ready(result)
    cut, whole = result.dead_letters
    assert cut.reason is DeadLetterReason.MESSAGE_TOO_LARGE
    assert base64.b64decode(cut.payload_b64) == big[:100] and cut.payload_truncated
    assert cut.payload_size == len(big)
    assert cut.payload_sha256 == hashlib.sha256(big).hexdigest()
    assert base64.b64decode(cut.key_b64 or "") == b"k" * 1024 and cut.key_truncated
    assert base64.b64decode(whole.payload_b64) == small and not whole.payload_truncated
    assert whole.payload_sha256 == hashlib.sha256(small).hexdigest()
    assert not whole.key_truncated


def test_the_worst_dead_letters_fit_the_smallest_output_the_settings_allow(
    classifier: Predictor,
) -> None:
    settings = WorkerSettings(max_output_bytes=128 * 1024, dead_letter_payload_bytes=86_016)
    limits = Limits.from_settings(settings)
    assert (limits.max_output_bytes, limits.dead_letter_payload_bytes) == (131_072, 86_016)
    # Control characters take 6 bytes each in JSON, the most any character can.
    control_id = "\x01" * 256
    error = RuntimeError("\x01\ud800" * 5_000_000)
    records = [
        _record(MessageKind.EMAIL, b"\x01" * 2_000_000, offset=0, key=b"\x01" * 1_000_000),
        _record(MessageKind.ARTICLE, _article(control_id, "ODD " + "\x01" * 19_000), offset=1),
    ]

    result = _processor(_RaisingClassifier(classifier, error), limits=limits).process(records)

    _outputs_are_wire_ready(result, limit=131_072)
    too_large, failed = result.dead_letters
    assert too_large.reason is DeadLetterReason.MESSAGE_TOO_LARGE and too_large.payload_truncated
    assert failed.reason is DeadLetterReason.INFERENCE_ERROR and failed.message_id == control_id


def test_a_dead_letter_shrinks_to_fit_limits_tighter_than_the_settings_allow(
    classifier: Predictor,
) -> None:
    value = b"not json " * 200
    limits = Limits(max_output_bytes=900)

    result = _processor(classifier, limits=limits).process([_record(MessageKind.EMAIL, value)])

    _outputs_are_wire_ready(result, limit=900)
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.INVALID_JSON
    assert dead.payload_b64 == "" and dead.payload_truncated and dead.payload_size == len(value)
    assert dead.payload_sha256 == hashlib.sha256(value).hexdigest()


def test_an_event_over_the_output_limit_is_dead_lettered_as_output_too_large(
    classifier: Predictor, ner: Predictor
) -> None:
    crowded = "john smith visited paris for google " * 8
    records = [
        _record(MessageKind.ARTICLE, _article("few", "stock profit"), offset=0),
        _record(MessageKind.ARTICLE, _article("many", crowded), offset=1),
    ]
    sizes = [
        len(r.key or b"") + len(r.value)
        for r in _processor(classifier, ner).process(records).outbound(TOPICS)
    ]
    assert sizes[1] > sizes[0] + 1000, "the entities make the second event much larger"
    limits = Limits(max_output_bytes=sizes[0] + 500, dead_letter_payload_bytes=64)

    result = _processor(classifier, ner, limits=limits).process(records)

    _outputs_are_wire_ready(result, limit=limits.max_output_bytes)
    assert [e.message_id for e in result.events] == ["few"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.OUTPUT_TOO_LARGE and dead.message_id == "many"
    # The size itself varies by a byte or so with processing_ms.
    why = rf"is \d+ bytes \(key \+ value, \d+ entities\), over the {limits.max_output_bytes} limit"
    assert re.search(why, dead.error_message)
    assert "TEXTROUTE_WORKER_MAX_OUTPUT_BYTES" in dead.error_message


HUGE_INT = "1" + "0" * 5000
HOSTILE_JSON = {
    "integer-of-5001-digits": (HUGE_INT, "an integer has 5001 digits, more than the 4300"),
    "negative-integer-of-5001-digits": ("-" + HUGE_INT, "an integer has 5001 digits"),
    "NaN": ("NaN", "NaN is not a JSON number"),
    "Infinity": ("Infinity", "Infinity is not a JSON number"),
    "-Infinity": ("-Infinity", "-Infinity is not a JSON number"),
    "float-beyond-a-double": ("1e999", "out of range"),
    "long-float-beyond-a-double": (HUGE_INT + ".5", "out of range"),
}


@pytest.mark.parametrize("case", list(HOSTILE_JSON))
def test_numbers_python_reads_but_json_cannot_carry_are_invalid_json(
    classifier: Predictor, case: str
) -> None:
    literal, why = HOSTILE_JSON[case]
    # In a field the message ignores: the parser, not the schema, must refuse it.
    value = f'{{"id": "h1", "body": "stock profit", "source": "AP", "n": {literal}}}'.encode()

    result = _processor(classifier).process([_record(MessageKind.ARTICLE, value)])

    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.INVALID_JSON
    assert why in dead.error_message
    assert result.events == []


def test_a_failure_outside_the_per_record_guards_dead_letters_the_batch_not_the_worker(
    classifier: Predictor,
) -> None:
    def broken_models() -> ModelSet:
        raise RuntimeError("model registry unavailable")

    processor = BatchProcessor.single(broken_models, Router(parse_rules(RULES)), TOPICS)
    records = [
        _record(MessageKind.ARTICLE, _article("a0", "stock profit"), offset=0),
        _record(MessageKind.ARTICLE, b"not json", offset=1),
    ]

    result = processor.process(records)

    out = _outputs_are_wire_ready(result)
    assert [r.key for r in out] == [b"a0", f"{TOPICS.article}/1/1".encode()]
    unexpected, rejected = result.dead_letters
    assert unexpected.reason is DeadLetterReason.UNEXPECTED_ERROR
    assert "model registry unavailable" in unexpected.error_message
    assert rejected.reason is DeadLetterReason.INVALID_JSON


class _FailsOnBerlin:
    """A real predictor whose `classify` or `entities` fails for texts mentioning berlin:
    `how` is "raise" (the call crashes) or "item" (an ItemError for that text alone)."""

    def __init__(self, inner: Predictor, how: str) -> None:
        self._inner = inner
        self.manifest = inner.manifest
        self.backend_name = inner.backend_name
        self.how = how

    def _call(
        self, fn: Callable[[Sequence[object]], Sequence[T]], texts: Sequence[object]
    ) -> list[T | ItemError]:
        bad = [i for i, t in enumerate(texts) if "berlin" in str(t)]
        if bad and self.how == "raise":
            raise RuntimeError("kernel exploded on berlin")
        out: list[T | ItemError] = list(fn(texts))
        for i in bad:
            out[i] = ItemError(index=i, reason="not_a_string", message="berlin refused")
        return out

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        return self._call(self._inner.classify, texts)

    def entities(self, texts: Sequence[object]) -> list[list[Entity] | ItemError]:
        return self._call(self._inner.entities, texts)


ISOLATION_TEXTS = [
    "john smith visited paris for google",
    "mary visited berlin for reuters",
    "mary smith works in london for apple",
    "the team win the cup",
]


def _spans(entities: Sequence[Entity]) -> list[tuple[str, str, int, int]]:
    return [(e.type, e.text, e.start, e.end) for e in entities]


@pytest.mark.parametrize("parallel", [True, False], ids=["ner-beside", "ner-after"])
@pytest.mark.parametrize("failing", ["classifier", "ner"])
@pytest.mark.parametrize("how", ["raise", "item"])
def test_a_model_failing_on_one_item_dead_letters_only_that_item(
    classifier: Predictor, ner: Predictor, parallel: bool, failing: str, how: str
) -> None:
    own: list[list[Entity]] = []
    for text in ISOLATION_TEXTS:
        (tags,) = ner.entities([text])
        assert isinstance(tags, list)
        own.append(tags)
    assert all(_spans(own[i]) != _spans(own[1]) for i in (0, 2)), "neighbours' tags differ"
    models = ModelSet(
        _FailsOnBerlin(classifier, how) if failing == "classifier" else classifier,
        _FailsOnBerlin(ner, how) if failing == "ner" else ner,
    )
    processor = BatchProcessor.single(
        lambda: models, Router(parse_rules(RULES)), TOPICS, parallel_models=parallel
    )
    records = [
        _record(MessageKind.ARTICLE, _article(f"a{i}", text), offset=i)
        for i, text in enumerate(ISOLATION_TEXTS)
    ]
    try:
        result = processor.process(records)
    finally:
        processor.close()

    out = _outputs_are_wire_ready(result)
    assert [r.key for r in out] == [b"a0", b"a1", b"a2", b"a3"]
    assert [e.message_id for e in result.events] == ["a0", "a2", "a3"]
    for event, i in zip(result.events, (0, 2, 3), strict=True):
        assert _spans(event.entities) == _spans(own[i]), f"a{i} carries its own entities"
    (dead,) = result.dead_letters
    assert dead.message_id == "a1"
    assert dead.error_message.startswith(f"{failing}: ")
    if how == "raise":
        assert dead.reason is DeadLetterReason.INFERENCE_ERROR
        assert "RuntimeError: kernel exploded on berlin" in dead.error_message
    else:
        assert dead.reason is DeadLetterReason.NOT_A_STRING and dead.error_class == "ItemError"


def test_a_record_whose_dead_letter_cannot_be_built_still_gets_one(
    classifier: Predictor,
) -> None:
    # A negative offset breaks SourceRef, so the event fails and so does the full dead letter.
    odd = InboundRecord(TOPICS.article, -1, -1, b"k", _article("a1", "stock profit"), NOW, NOW)
    good = _record(MessageKind.ARTICLE, _article("a2", "team win cup"), offset=2)

    result = _processor(classifier).process([odd, good])

    out = _outputs_are_wire_ready(result)
    assert [r.key for r in out] == [f"{TOPICS.article}/0/0".encode(), b"a2"]
    dead = result.dead_letters[0]
    assert dead.reason is DeadLetterReason.UNEXPECTED_ERROR
    assert dead.error_message.startswith("the dead letter could not be built: ")
    assert dead.payload_sha256 == hashlib.sha256(odd.value or b"").hexdigest()
    assert dead.payload_truncated and dead.payload_size == len(odd.value or b"")
