"""BatchProcessor under hostile input: one producible output per record, whatever its bytes."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from inference import load_predictor
from schemas.events import DeadLetter, DeadLetterReason, RoutingEvent
from schemas.messages import MessageKind
from stream.config import TopicSettings, WorkerSettings
from stream.model_set import ModelSet
from stream.processor import BatchProcessor, BatchResult, InboundRecord, Limits
from stream.routing import Router, parse_rules

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = """
default_queue: triage
categories: {World: desk.world, Sports: desk.sports, Business: desk.business}
entity_rules:
  - {name: watch, type: ORG, values: [google], queue: desk.watch}
"""
# The smallest outputs the settings allow, so the payload cap and the 16 KiB the settings
# reserve for the rest of a dead letter are both tested at their tightest.
TIGHT = Limits.from_settings(
    WorkerSettings(max_output_bytes=128 * 1024, dead_letter_payload_bytes=86_016)
)
# No example database: nothing written into the checkout, and runs stay independent.
FEW = settings(max_examples=100, deadline=None, database=None)
SOME = settings(max_examples=300, deadline=None, database=None)


@pytest.fixture(scope="module")
def processors(
    tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> Iterator[dict[str, tuple[BatchProcessor, Limits]]]:
    """Processors over the real tiny models: NER beside the classifier and after it, with the
    default limits and with the tightest the settings allow."""
    models = ModelSet(load_predictor(tiny_classifier_artifact), load_predictor(tiny_ner_artifact))
    router = Router(parse_rules(RULES))
    built = {
        name: (
            BatchProcessor.single(lambda: models, router, TOPICS, limits, parallel_models=beside),
            limits,
        )
        for name, limits, beside in [
            ("beside", Limits(), True),
            ("after", Limits(), False),
            ("tight", TIGHT, True),
        ]
    }
    yield built
    for processor, _ in built.values():
        processor.close()


def check_one_output_each(
    processor: tuple[BatchProcessor, Limits], values: list[tuple[str, Any, Any]]
) -> BatchResult:
    """Process (topic, key, value) records as one batch and check every output: one per
    record, in order, bytes that parse and validate, within the output limit, and a dead
    letter's payload, size and digest true to the record."""
    records = [
        InboundRecord(topic, 2, offset, key, value, NOW, NOW)
        for offset, (topic, key, value) in enumerate(values)
    ]
    processor_, limits = processor

    result = processor_.process(records)
    out = result.outbound(TOPICS)

    assert len(out) == len(records)
    assert len(result.events) + len(result.dead_letters) == len(records)
    for record, produced in zip(records, out, strict=True):
        assert isinstance(produced.key, bytes) and isinstance(produced.value, bytes)
        assert len(produced.key) + len(produced.value) <= limits.max_output_bytes
        wire = json.loads(produced.value)
        if produced.topic == TOPICS.routed:
            routed = RoutingEvent.model_validate(wire)
            assert routed.source.offset == record.offset
            assert produced.key == routed.message_id.encode()
            event("routed")  # in --hypothesis-show-statistics: how often the models ran
            continue
        assert produced.topic == TOPICS.dead_letter
        dead = DeadLetter.model_validate(wire)
        event(dead.reason.value)
        assert dead.source.offset == record.offset
        raw = record.value or b""
        # The whole head the settings promise, never less: a dead letter that needed shrinking
        # or a last-resort one would lose it.
        kept = base64.b64decode(dead.payload_b64)
        assert kept == raw[: limits.dead_letter_payload_bytes]
        assert dead.payload_truncated == (len(kept) < len(raw))
        assert dead.payload_size == len(raw)
        assert dead.payload_sha256 == hashlib.sha256(raw).hexdigest()
        if dead.message_id is None:
            assert produced.key == f"{record.topic}/2/{record.offset}".encode()
    return result


INBOUND = list(TOPICS.inbound())
topics = st.sampled_from([*INBOUND, "elsewhere"])
keys = st.none() | st.binary(max_size=64)
# Every code point, lone surrogates (category Cs) included. Joined from a list because
# st.text() would merge the two alphabets and draw the 2,048 surrogates almost never.
any_char = st.characters(exclude_categories=()) | st.characters(categories=["Cs"])
any_text = st.lists(any_char, max_size=40).map("".join)
some_text = st.lists(any_char, min_size=1, max_size=40).map("".join)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | any_text
    | st.sampled_from(["stock market profit", "john smith visited paris for google"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def to_json_bytes(value: object, ascii_only: bool) -> bytes:
    """JSON text of `value`: ASCII with \\u escapes (lone surrogates become "\\ud800"), or
    UTF-8 where a lone surrogate is written as the bytes UTF-8 forbids."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def valid_message(kind: MessageKind, message_id: str, text: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"id": message_id, "subject": "", "body": text}
    if kind is MessageKind.EMAIL:
        fields.update({"from": "a@example.com", "to": ["b@example.com"]})
    elif kind is MessageKind.TICKET:
        fields.update({"customer": "c1", "priority": "high"})
    else:
        fields = {"id": message_id, "headline": "", "body": text, "source": "AP"}
    return fields


kinds = st.sampled_from(list(MessageKind))
texts = st.sampled_from(
    ["stock market profit", "john smith visited paris for google", "the team win the cup"]
)


@st.composite
def messages_with_fields_replaced(draw: st.DrawFn) -> tuple[str, Any, Any]:
    """A valid message of some kind, with some of its fields replaced by arbitrary JSON."""
    kind = draw(kinds)
    fields = valid_message(kind, draw(st.text(min_size=1, max_size=20)), draw(texts))
    for name in draw(st.lists(st.sampled_from([*fields, "extra"]), max_size=3, unique=True)):
        fields[name] = draw(json_values)
    value = to_json_bytes(fields, draw(st.booleans()))
    return TOPICS.topic_for(kind), draw(keys), value


@st.composite
def messages_with_any_text(draw: st.DrawFn) -> tuple[str, Any, Any]:
    """A message whose id and text are arbitrary Unicode, lone surrogates included."""
    kind = draw(kinds)
    text = draw(texts) + draw(any_text)
    fields = valid_message(kind, draw(some_text), text)
    return TOPICS.topic_for(kind), draw(keys), to_json_bytes(fields, ascii_only=True)


@st.composite
def messages_with_hostile_numbers(draw: st.DrawFn) -> tuple[str, Any, Any]:
    """A valid message with a number Python parses but JSON cannot carry, written as text."""
    kind = draw(kinds)
    fields = valid_message(kind, "n1", draw(texts))
    body = json.dumps(fields)[:-1]
    number = draw(
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])
        | st.integers(4301, 6000).map(lambda n: "1" + "0" * (n - 1))
        | st.integers(310, 6000).map(lambda n: "-" + "9" * n + ".5")
    )
    field = draw(st.sampled_from(['"extra"', '"id"', '"body"']))
    return TOPICS.topic_for(kind), None, f"{body}, {field}: {number}}}".encode()


@FEW
@given(batch=st.lists(st.tuples(topics, keys, st.none() | st.binary(max_size=300)), max_size=6))
def test_arbitrary_bytes_yield_one_producible_output_each(
    processors: dict[str, tuple[BatchProcessor, Limits]], batch: list[tuple[str, Any, Any]]
) -> None:
    check_one_output_each(processors["beside"], batch)


@SOME
@given(
    batch=st.lists(
        st.tuples(st.sampled_from(INBOUND), keys, st.booleans(), json_values).map(
            lambda t: (t[0], t[1], to_json_bytes(t[3], t[2]))
        ),
        min_size=1,
        max_size=6,
    ),
    mode=st.sampled_from(["beside", "after"]),
)
def test_arbitrary_json_yields_one_producible_output_each(
    processors: dict[str, tuple[BatchProcessor, Limits]],
    batch: list[tuple[str, Any, Any]],
    mode: str,
) -> None:
    check_one_output_each(processors[mode], batch)


@SOME
@given(
    batch=st.lists(
        messages_with_fields_replaced() | messages_with_any_text(), min_size=1, max_size=6
    ),
    mode=st.sampled_from(["beside", "after"]),
)
def test_messages_with_hostile_fields_yield_one_producible_output_each(
    processors: dict[str, tuple[BatchProcessor, Limits]],
    batch: list[tuple[str, Any, Any]],
    mode: str,
) -> None:
    check_one_output_each(processors[mode], batch)


@FEW
@given(batch=st.lists(messages_with_hostile_numbers(), min_size=1, max_size=4))
def test_numbers_json_cannot_carry_are_dead_lettered_as_invalid_json(
    processors: dict[str, tuple[BatchProcessor, Limits]], batch: list[tuple[str, Any, Any]]
) -> None:
    result = check_one_output_each(processors["beside"], batch)
    assert {d.reason for d in result.dead_letters} == {DeadLetterReason.INVALID_JSON}


@st.composite
def huge_records(draw: st.DrawFn) -> tuple[str, Any, Any]:
    """Records of up to a few MB: a long body, key, id or ignored field, or plain filler."""
    size = draw(st.integers(100_000, 3_000_000))
    kind = draw(kinds)
    shape = draw(st.sampled_from(["body", "key", "id", "extra", "filler"]))
    if shape == "filler":
        return TOPICS.topic_for(kind), None, draw(st.sampled_from([b"\x01", b"{", b"\xff"])) * size
    message = valid_message(kind, "big-" + "\x01" * (300 if shape == "id" else 0), "stock profit")
    if shape == "body":
        message["body"] = "john paris google \x01 " * (size // 20)
    elif shape == "extra":
        # Ignored by the schema: a large record that still routes.
        message["extra"] = "\x01" * size
    key = b"k" * size if shape == "key" else None
    return TOPICS.topic_for(kind), key, json.dumps(message).encode()


HUGE_ROUTED = {**valid_message(MessageKind.ARTICLE, "big", "stock profit"), "extra": "x" * 900_000}


@settings(max_examples=25, deadline=None, database=None)
@given(batch=st.lists(huge_records(), min_size=1, max_size=3))
# Hypothesis favours small sizes: the largest records are always tried.
@example(batch=[(TOPICS.email, b"k" * 3_000_000, b"\x01" * 3_000_000)])
@example(batch=[(TOPICS.article, b"k" * 900_000, json.dumps(HUGE_ROUTED).encode())])
def test_huge_records_yield_outputs_within_the_tightest_output_limit(
    processors: dict[str, tuple[BatchProcessor, Limits]], batch: list[tuple[str, Any, Any]]
) -> None:
    check_one_output_each(processors["tight"], batch)
