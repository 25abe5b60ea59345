"""`textroute demo`: its pipelines file, its message mix, its tables, and one run end to end."""

from __future__ import annotations

import io
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rich.console import Console

from schemas.entities import LabelScore
from schemas.events import ModelRef, ModelText, RouteReason, RouteTarget, RoutingEvent, SourceRef
from schemas.messages import MESSAGE_TYPES, MessageKind
from stream import demo
from stream.datasets import TICKETS_CSV, read_tickets, split_tickets
from stream.demo import DemoModels, DemoSettings, run_demo, summary_table, write_pipelines
from stream.demo_mix import DemoMessage, MixCounts, demo_messages
from stream.errors import StreamConfigError
from stream.pipeline_config import load_pipelines
from stream.samples import SampleRecord
from stream.view import events_table

QUEUES = [
    "Technical Support", "Product Support", "Customer Service", "IT Support",
    "Billing and Payments", "Returns and Exchanges", "Service Outages and Maintenance",
    "Sales and Pre-Sales", "General Inquiry", "Human Resources",
]  # fmt: skip
TOPICS = ["acq", "crude", "earn", "grain", "money-fx", "nat-gas", "ship", "wheat"]
SHARED_TICKETS = DemoSettings().data_dir / TICKETS_CSV


@pytest.fixture(scope="module")
def tiny_multilabel_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.export import EvalSample, export_artifact
    from training.tiny import TOPICS as TINY_TOPICS
    from training.tiny import build_tiny_multilabel, multilabel_texts

    out = build_tiny_multilabel(tmp_path_factory.mktemp("multilabel") / "tiny-multilabel")
    texts, sets = multilabel_texts(128, seed=2)
    gold = [[TINY_TOPICS.index(t) for t in labels] for labels in sets]
    export_artifact(out, eval_data=EvalSample(source="generated", texts=texts, label_sets=gold))
    return out


def _ticket_rows() -> list[dict[str, str]]:
    rows = []
    for i in range(600):
        language = ["en", "en", "en", "de", "es", "fr"][i % 6]
        rows.append(
            {
                "subject": f"Ticket {i} about the service",
                "body": f"Ticket number {i}: the portal fails when I log in from the office. " * 2,
                "queue": QUEUES[i % 4],
                "priority": ["low", "medium", "high"][i % 3],
                "type": "Incident",
                "language": language,
            }
        )
    return rows


def _reuters_file(path: Path) -> Path:
    lines = []
    for i in range(40):
        labels = [TOPICS[i % len(TOPICS)]] + ([TOPICS[(i + 3) % len(TOPICS)]] if i % 2 else [])
        body = f"Article {i}: prices rose as traders weighed supply, the ministry said. " * 5
        lines.append(
            json.dumps(
                {"labels": labels, "title": f"HEADLINE {i}", "body": body, "date": "8-APR-1987"}
            )
        )
    lines.append(json.dumps({"labels": ["earn"], "title": "NO BODY", "body": None}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_pipelines_file_parses_and_maps_every_ticket_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = DemoModels.under(tmp_path / "models")
    labels = {
        models.tickets: QUEUES,
        models.reuters: TOPICS,
        models.classifier: ["World", "Sports", "Business", "Sci/Tech"],
    }
    monkeypatch.setattr(demo, "_labels_of", lambda path: labels[path])

    path = write_pipelines(models, tmp_path / "runs" / "pipelines.yaml")

    pipelines = {p.name: p for p in load_pipelines(path)}
    assert set(pipelines) == {"ticket", "article", "email"}
    ticket, article, email = pipelines["ticket"], pipelines["article"], pipelines["email"]
    assert ticket.rules.check_labels(QUEUES) == [], "every queue has a desk"
    assert ticket.rules.categories["Billing and Payments"] == "support.billing-and-payments"
    assert ticket.classifier == models.tickets.resolve() and ticket.ner is None
    language = ticket.rules.language
    assert language is not None and language.supported == ["en"]
    assert language.queue == "support.translation" and "de" in (language.candidates or [])
    # Only the topics the tagger knows get a desk; the rest go to the default desk.
    assert set(article.rules.categories) <= set(TOPICS) and article.allow_unmapped_labels
    assert article.rules.categories["crude"] == article.rules.categories["nat-gas"]
    assert article.rules.entity_rules and article.ner == models.ner.resolve()
    assert email.text.clean_html and email.text.strip_quotes and email.text.strip_signature
    assert email.rules.check_labels(labels[models.classifier]) == []


def test_the_mix_counts_add_up_to_the_messages_asked_for() -> None:
    for messages, ratio in ((65, 0.1), (24, 0.25), (7, 0.0), (1, 1.0)):
        c = MixCounts.of(messages, ratio)
        total = c.tickets + c.foreign_tickets + c.articles + c.emails + c.malformed
        assert total == messages and c.html_emails <= c.emails
    assert MixCounts.of(65, 0.1) == MixCounts(20, 4, 20, 15, 5, 6)


def test_the_message_mix_has_every_kind_held_out_tickets_and_cleanable_emails(
    tmp_path: Path,
) -> None:
    rows = _ticket_rows()
    train, test = split_tickets(rows)
    messages = demo_messages(
        MixCounts.of(65, 0.1),
        prefix="demo-t",
        seed=0,
        ticket_test=test,
        ticket_rows=rows,
        reuters_test=_reuters_file(tmp_path / "test.jsonl"),
    )

    assert len({m.record.key for m in messages}) == len(messages) == 65
    valid = [m for m in messages if m.record.expected_reason is None]
    for m in valid:  # every valid one parses as its kind's message
        MESSAGE_TYPES[m.kind].model_validate_json(m.record.value)
    assert {m.kind for m in valid} == set(MessageKind)
    trained_on = {r["body"] for r in train}
    tickets = [json.loads(m.record.value) for m in valid if m.note == "held-out ticket"]
    assert len(tickets) == 20 and not {t["body"] for t in tickets} & trained_on
    assert {m.note for m in valid} >= {"ticket in de", "ticket in es", "ticket in fr"}
    articles = [m for m in valid if m.kind is MessageKind.ARTICLE]
    assert len(articles) == 20 and sum(len(m.gold) >= 2 for m in articles) == 10
    html = [json.loads(m.record.value)["body"] for m in valid if m.note.startswith("HTML")]
    assert len(html) == 5 and all("<blockquote>" in b and "wrote:" in b for b in html)
    assert sum(m.record.expected_reason is not None for m in messages) == 6


def test_without_the_data_sets_generated_tickets_and_articles_stand_in() -> None:
    messages = demo_messages(
        MixCounts.of(24, 0.0),
        prefix="demo-t",
        seed=1,
        ticket_test=None,
        ticket_rows=None,
        reuters_test=None,
    )
    assert {m.kind for m in messages} == set(MessageKind)
    assert all(m.record.expected_reason is None for m in messages)


@pytest.mark.skipif(not SHARED_TICKETS.is_file(), reason="no shared tickets data")
def test_the_demo_sends_only_tickets_the_queue_model_did_not_train_on() -> None:
    rows = read_tickets(SHARED_TICKETS)
    train, test = split_tickets(rows)
    assert (len(train), len(test)) == (1112, 279), "the bench's split (bench/tickets_split.py)"
    messages = demo_messages(
        MixCounts.of(65, 0.1),
        prefix="d",
        seed=0,
        ticket_test=test,
        ticket_rows=rows,
        reuters_test=None,
    )
    sent = [json.loads(m.record.value) for m in messages if m.note == "held-out ticket"]
    trained = {(r["subject"], r["body"]) for r in train}
    assert len(sent) == 20 and not {(t["subject"], t["body"]) for t in sent} & trained
    assert len({m.gold for m in messages if m.note == "held-out ticket"}) == 10, "every queue"


def _event(
    message_id: str, pipeline: str, labels: dict[str, float], routes: list[str]
) -> RoutingEvent:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    top = max(labels, key=labels.__getitem__)
    return RoutingEvent(
        message_id=message_id,
        kind=MessageKind(pipeline),
        category=top,
        confidence=labels[top],
        route=routes[0],
        reasons=[RouteReason(rule=f"category:{top}", detail="-")],
        pipeline=pipeline,
        labels=[LabelScore(label=k, score=v) for k, v in labels.items()],
        routes=[RouteTarget(queue=q, rule="category") for q in routes],
        model_text=ModelText(length=120, sha256="0" * 64, cleaned=pipeline == "email"),
        classifier=ModelRef(name="m", version="1"),
        received_at=now,
        routed_at=now,
        processing_ms=3.0,
        source=SourceRef(topic="t", partition=0, offset=0),
    )


def test_the_tables_show_several_labels_and_routes_and_the_summary_counts_per_pipeline() -> None:
    def sent(key: str, kind: MessageKind, note: str, *gold: str) -> DemoMessage:
        return DemoMessage(SampleRecord(kind, key, b"{}"), note, gold)

    messages = [
        sent("a1", MessageKind.ARTICLE, "Reuters, 2 topics", "crude", "nat-gas"),
        sent("a2", MessageKind.ARTICLE, "Reuters, 1 topic", "earn"),
        sent("t1", MessageKind.TICKET, "held-out ticket", "IT Support"),
        sent("e1", MessageKind.EMAIL, "HTML email: quote + signature", "Business"),
        sent("x1", MessageKind.EMAIL, "malformed: blank_text"),
    ]
    events = [
        _event("a1", "article", {"crude": 0.9, "money-fx": 0.6}, ["desk.energy", "desk.markets"]),
        _event("a2", "article", {"acq": 0.7}, ["desk.deals"]),
        _event("t1", "ticket", {"IT Support": 0.8}, ["support.it-support"]),
        _event("e1", "email", {"Business": 0.9}, ["mail.business"]),
    ]
    out = io.StringIO()
    console = Console(file=out, width=200)
    console.print(events_table(events))
    console.print(summary_table(events, [], messages))
    text = out.getvalue()

    assert "crude 0.90, money-fx 0.60" in text and "desk.energy, desk.markets" in text
    assert "120c cleaned" in text
    assert re.search(r"│ article: routed\s+│\s+2 │", text)
    assert re.search(r"│   -> desk.markets\s+│\s+1 │", text)
    assert re.search(r"│ ticket: queue = the data set's\s+│\s+1 of 1 │", text)
    assert re.search(r"│ article: a topic of the data set's found\s+│\s+1 of 2 │", text)
    assert re.search(r"│ article: 2\+ topics given\s+│\s+1 │", text)
    assert re.search(r"│ missing\s+│\s+1 │", text)


@pytest.mark.integration
def test_demo_routes_every_message_shows_the_tables_and_stops_everything(
    tmp_path: Path,
    tiny_classifier_artifact: Path,
    tiny_ner_artifact: Path,
    tiny_multilabel_artifact: Path,
) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_classifier_artifact, models / "classifier")
    shutil.copytree(tiny_ner_artifact, models / "ner")
    # Any classifier serves as the ticket model: the demo maps the queues of its labels.
    shutil.copytree(tiny_classifier_artifact, models / "tickets-queue")
    shutil.copytree(tiny_multilabel_artifact, models / "reuters")
    out = io.StringIO()
    settings = DemoSettings(
        messages=24, malformed_ratio=0.25, models_dir=models, work_dir=tmp_path / "runs"
    )

    code = run_demo(settings, Console(file=out, width=200))

    text = out.getvalue()
    assert code == 0, text
    for name in ("classifier", "ner", "tickets-queue", "reuters"):
        assert f"{name}: using" in text
    load_pipelines(tmp_path / "runs" / "pipelines.yaml")
    assert "Routed events" in text and "Dead letters" in text
    for pipeline in ("ticket", "article", "email"):
        assert re.search(rf"│ {pipeline}: routed\s+│\s+\d+ │", text), pipeline
    assert re.search(r"│ missing\s+│\s+0 │", text), "every message routed or dead-lettered"
    assert re.search(r"│ dead letter: \w+", text), "the malformed ones are shown"
    assert "worker stopped (exit 0)" in text and "broker stopped" in text


def test_demo_without_models_or_data_says_what_to_provide(tmp_path: Path) -> None:
    settings = DemoSettings(models_dir=tmp_path / "none", data_dir=tmp_path / "no-data")
    with pytest.raises(StreamConfigError, match="TEXTROUTE_DEMO_DATA_DIR"):
        run_demo(settings, Console(file=io.StringIO()))


def test_demo_without_data_names_every_model_it_cannot_train(tmp_path: Path) -> None:
    # Before any training starts: a missing data set is not found ten minutes in.
    settings = DemoSettings(models_dir=tmp_path / "none", data_dir=tmp_path / "no-data")
    with pytest.raises(StreamConfigError) as info:
        demo.ensure_models(settings, Console(file=io.StringIO()))
    for name in ("classifier", "ner", "tickets-queue", "reuters"):
        assert name in str(info.value)


def test_the_random_pick_is_seeded() -> None:
    rows = _ticket_rows()
    _, test = split_tickets(rows)
    first = demo_messages(
        MixCounts.of(30, 0.0), prefix="p", seed=3, ticket_test=test, ticket_rows=rows,
        reuters_test=None,
    )  # fmt: skip
    again = demo_messages(
        MixCounts.of(30, 0.0), prefix="p", seed=3, ticket_test=test, ticket_rows=rows,
        reuters_test=None,
    )  # fmt: skip
    assert [m.record.value for m in first] == [m.record.value for m in again]
