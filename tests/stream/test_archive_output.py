"""Archive records: every routed message, with the text its classifier read, beside its event."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from inference import Predictor, load_predictor
from schemas.entities import Classification, LabelScore
from schemas.feedback import ArchivedMessage
from schemas.manifest import ModelManifest, TaskKind
from schemas.messages import MessageKind
from stream.config import TopicSettings
from stream.metrics import StreamMetrics
from stream.model_set import ModelSet
from stream.pipeline_config import TextOptions
from stream.pipelines import DEFAULT_PIPELINE, Pipeline, Pipelines
from stream.processor import BatchProcessor, BatchResult, InboundRecord, Limits
from stream.routing import LanguageGuess, Router, parse_rules

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = """
default_queue: triage
review: {{queue: human-review, min_confidence: {review}}}
categories: {{World: desk.world, Sports: desk.sports, Business: desk.business}}
"""
EMAIL_BODY = "the team won the cup final match\n\n-- \nJane Doe\nSales, Example Corp\n"


@pytest.fixture(scope="module")
def classifier(tiny_classifier_artifact: Path) -> Predictor:
    return load_predictor(tiny_classifier_artifact)


def _processor(
    classifier: object,
    *,
    review: float = 0.0,
    archive: bool = True,
    limits: Limits | None = None,
    metrics: StreamMetrics | None = None,
) -> BatchProcessor:
    models = ModelSet(classifier)  # type: ignore[arg-type]
    pipeline = Pipeline(
        DEFAULT_PIPELINE,
        tuple(MessageKind),
        lambda: models,
        Router(parse_rules(RULES.format(review=review))),
        text=TextOptions(strip_quotes=True, strip_signature=True),
    )
    return BatchProcessor(
        Pipelines([pipeline]),
        TOPICS,
        limits,
        clock=lambda: NOW,
        archive=archive,
        metrics=metrics,
    )


def _records() -> list[InboundRecord]:
    def record(kind: MessageKind, offset: int, payload: dict[str, object] | bytes) -> InboundRecord:
        value = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return InboundRecord(TOPICS.topic_for(kind), 2, offset, b"k", value, NOW, NOW)

    return [
        record(
            MessageKind.EMAIL,
            10,
            {
                "id": "e1",
                "subject": "Cup final",
                "body": EMAIL_BODY,
                "from": "a@example.com",
                "to": "b@example.com",
            },
        ),
        record(MessageKind.ARTICLE, 11, b'{"id": "broken", '),
        record(
            MessageKind.ARTICLE,
            12,
            {"id": "a1", "headline": "Markets", "body": "shares and stock jump", "source": "x"},
        ),
        record(MessageKind.TICKET, 13, {"id": "t1", "subject": "", "body": "   "}),
    ]


def _archived(result: BatchResult) -> dict[str, ArchivedMessage]:
    return {a.message_id: a for a in result.archived}


def test_each_routed_message_is_archived_before_its_event_and_dead_letters_are_not(
    classifier: Predictor,
) -> None:
    result = _processor(classifier).process(_records())

    assert [e.message_id for e in result.events] == ["e1", "a1"]
    assert len(result.dead_letters) == 2
    out = result.outbound(TOPICS)
    assert [(r.topic, r.key) for r in out] == [
        (TOPICS.archive, b"e1"),
        (TOPICS.routed, b"e1"),
        (TOPICS.dead_letter, f"{TOPICS.article}/2/11".encode()),
        (TOPICS.archive, b"a1"),
        (TOPICS.routed, b"a1"),
        (TOPICS.dead_letter, b"t1"),
    ]
    on_wire = {
        r.key.decode(): ArchivedMessage.model_validate_json(r.value)
        for r in out
        if r.topic == TOPICS.archive
    }
    assert on_wire == _archived(result)
    for event in result.events:
        archived = on_wire[event.message_id]
        assert archived.kind == event.kind and archived.pipeline == event.pipeline == "default"
        assert (archived.category, archived.confidence) == (event.category, event.confidence)
        assert archived.route == event.route and archived.review is False
        assert archived.classifier == event.classifier and archived.classifier.name == "tiny-topics"
        assert archived.routed_at == event.routed_at and archived.source == event.source
        assert archived.labels == [], "a single-label model's label is `category`"
    email = _archived(result)["e1"]
    # The text the classifier read: the signature cut, the subject first.
    assert email.text == "Cup final\nthe team won the cup final match"
    model_text = result.events[0].model_text
    assert model_text.cleaned is True and model_text.text is None, "the event carries no text"
    assert hashlib.sha256(email.text.encode()).hexdigest() == model_text.sha256


def test_nothing_is_archived_unless_the_processor_is_told_to(classifier: Predictor) -> None:
    result = _processor(classifier, archive=False).process(_records())
    assert result.archived == []
    assert {r.topic for r in result.outbound(TOPICS)} == {TOPICS.routed, TOPICS.dead_letter}


def test_review_says_whether_the_router_sent_the_message_to_people(
    classifier: Predictor,
) -> None:
    result = _processor(classifier, review=1.0).process(_records())
    assert {e.route for e in result.events} == {"human-review"}
    assert all(a.review for a in result.archived) and len(result.archived) == 2


def test_a_low_confidence_message_the_language_check_sent_elsewhere_is_not_under_review(
    classifier: Predictor,
) -> None:
    # The review rule matches (it is among the reasons), but the language queue wins.
    rules = parse_rules(
        RULES.format(review=1.0) + "language: {supported: [en], queue: other-languages}\n"
    )
    models = ModelSet(classifier)  # type: ignore[arg-type]
    pipeline = Pipeline(
        DEFAULT_PIPELINE,
        tuple(MessageKind),
        lambda: models,
        Router(rules),
        detect_language=lambda text, candidates: LanguageGuess("de", 0.99),
    )
    processor = BatchProcessor(Pipelines([pipeline]), TOPICS, clock=lambda: NOW, archive=True)
    result = processor.process(_records())
    assert {e.route for e in result.events} == {"other-languages"}
    assert all(any(r.rule == "review:low-confidence" for r in e.reasons) for e in result.events)
    assert [a.review for a in result.archived] == [False, False]


def test_an_archive_record_over_the_output_limit_is_dropped_and_the_event_still_goes(
    classifier: Predictor,
) -> None:
    def article(offset: int, message_id: str, body: str) -> InboundRecord:
        value = json.dumps({"id": message_id, "body": body, "source": "x"}).encode()
        return InboundRecord(TOPICS.article, 0, offset, None, value, NOW, NOW)

    # The archive record carries the text, the event only its length and digest.
    records = [
        article(0, "long", "the team won the cup final match " * 60),
        article(1, "short", "shares and stock jump"),
    ]
    plain = _processor(classifier, archive=False).process(records)
    limit = max(len(o.key) + len(o.value) for o in plain.outputs) + 200
    full = _processor(classifier).process(records)
    sizes = {
        o.archive.key.decode(): len(o.archive.key) + len(o.archive.value)
        for o in full.outputs
        if o.archive is not None
    }
    assert sizes["short"] <= limit < sizes["long"], (limit, sizes)
    metrics = StreamMetrics()

    with capture_logs() as logs:
        result = _processor(
            classifier, limits=Limits(max_output_bytes=limit), metrics=metrics
        ).process(records)

    assert [o.value for o in result.outputs] == [o.value for o in plain.outputs]
    assert [e.message_id for e in result.events] == ["long", "short"]
    assert [a.message_id for a in result.archived] == ["short"]
    dropped = [entry for entry in logs if entry["event"] == "archive.dropped"]
    assert [(d["message_id"], d["reason"], d["log_level"]) for d in dropped] == [
        ("long", "output_too_large", "warning")
    ]
    assert (
        metrics.registry.get_sample_value(
            "textroute_archive_dropped_total", {"reason": "output_too_large"}
        )
        == 1
    )


class TwoTopics:
    """A stand-in multi-label model giving every text two labels."""

    manifest = ModelManifest(
        name="two-topics",
        version="1",
        task=TaskKind.MULTI_LABEL,
        labels=["World", "Sports", "Business"],
        thresholds=[0.5, 0.5, 0.5],
        base_model="none",
        max_length=8,
    )
    backend_name = "stub"

    def classify(self, texts: Sequence[object]) -> list[Classification]:
        given = [LabelScore(label="Sports", score=0.9), LabelScore(label="Business", score=0.8)]
        return [Classification(label="Sports", score=0.9, top_k=given, labels=given) for _ in texts]


def test_a_multi_label_message_is_archived_with_every_label_it_was_given() -> None:
    result = _processor(TwoTopics()).process(_records())
    archived = _archived(result)
    assert archived["a1"].labels == ["Sports", "Business"]
    assert archived["a1"].category == "Sports"
    assert {r.queue for r in result.events[1].routes} == {"desk.sports", "desk.business"}
