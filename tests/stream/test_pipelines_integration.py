"""One worker, three pipelines, on the real broker: each kind routed by its own models and rules."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas.events import RoutingEvent
from schemas.messages import MessageKind
from stream.config import BrokerSettings, TopicSettings
from stream.inputs import to_outbound
from stream.samples import SampleRecord
from stream.topics import ensure_topics, produce
from tests.stream.conftest import WorkerProcess
from tests.stream.watch import Watcher, read_outputs

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture(scope="module")
def tiny_multilabel_artifact(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, list[str], str]:
    """A tiny multi-label topic tagger, its labels, and a text it gives two of them."""
    from training.export import EvalSample, export_artifact
    from training.tiny import TOPICS, build_tiny_multilabel, multilabel_texts

    out = build_tiny_multilabel(tmp_path_factory.mktemp("multilabel") / "tiny-multilabel")
    texts, sets = multilabel_texts(128, seed=2)
    gold = [[TOPICS.index(t) for t in labels] for labels in sets]
    export_artifact(out, eval_data=EvalSample(source="generated", texts=texts, label_sets=gold))
    return out, list(TOPICS), "the team win the cup match as shares and stock price jump"


def _pipelines_file(path: Path, classifier: Path, ner: Path, tagger: Path, tags: list[str]) -> Path:
    """Tickets: topic queues with a priority attribute and an English-only check. Emails:
    cleaned (HTML, quotes, signature), with entities and the model text in the event. Articles:
    the multi-label tagger, one desk per tag, a watch list beside it."""
    desks = ", ".join(f"{json.dumps(tag)}: desk.{i}" for i, tag in enumerate(tags))
    path.write_text(
        f"""
version: 1
models:
  topics: {classifier}
  ner: {ner}
  tags: {tagger}
pipelines:
  ticket:
    classifier: topics
    attributes: {{priority: topics}}
    rules:
      default_queue: tickets.triage
      categories: {{World: tickets.world, Sports: tickets.sports, Business: tickets.billing,
                   Sci/Tech: tickets.tech}}
      language: {{supported: [en], candidates: [en, de, es, fr, pt], queue: tickets.language}}
  email:
    classifier: topics
    ner: ner
    text: {{clean_html: true, strip_quotes: true, strip_signature: true, include_text: true}}
    allow_unmapped_labels: true
    rules:
      default_queue: mail.general
      categories: {{Business: mail.finance}}
  article:
    classifier: tags
    ner: ner
    rules:
      default_queue: desk.general
      categories: {{{desks}}}
      entity_rules:
        - {{name: watch, type: ORG, values: [google], queue: desk.watch}}
""",
        encoding="utf-8",
    )
    return path


def _record(kind: MessageKind, key: str, payload: dict[str, object]) -> SampleRecord:
    return SampleRecord(kind, key, json.dumps({"id": key, **payload}).encode())


HTML_REPLY = (
    "<html><body><p>the market price of shares and profit at the bank fell</p>"
    "<p>john smith from google</p>"
    "<div>-- <br>Mary Smith<br>Finance team</div>"
    "<blockquote>On Mon, 2 Nov 2026 at 10:00, Bob wrote:<br>"
    "&gt; the team will win the cup match at paris<br></blockquote>"
    "</body></html>"
)
GERMAN_TICKET = (
    "Sehr geehrte Damen und Herren, meine Rechnung für diesen Monat ist zu hoch und ich "
    "bitte um eine Erstattung des zu viel gezahlten Betrags."
)


async def test_one_worker_routes_each_kind_by_its_own_pipeline(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    tiny_classifier_artifact: Path,
    tiny_ner_artifact: Path,
    tiny_multilabel_artifact: tuple[Path, list[str], str],
    start_worker: StartWorker,
    tmp_path: Path,
) -> None:
    tagger, tags, two_tag_text = tiny_multilabel_artifact
    pipelines = _pipelines_file(
        tmp_path / "pipelines.yaml", tiny_classifier_artifact, tiny_ner_artifact, tagger, tags
    )
    records = [
        _record(
            MessageKind.TICKET,
            "t-en",
            {
                "customer": "c1",
                "subject": "bank profit",
                "body": "Our invoice shows the wrong stock price for the shares in the deal, and "
                "the bank charged us twice this month. Please refund the difference.",
            },
        ),
        _record(MessageKind.TICKET, "t-de", {"customer": "c2", "body": GERMAN_TICKET}),
        _record(
            MessageKind.EMAIL,
            "e-html",
            {"from": "a@x.org", "to": ["b@y.org"], "subject": "", "body": HTML_REPLY},
        ),
        _record(MessageKind.ARTICLE, "a-two", {"source": "wire", "body": two_tag_text}),
        _record(
            MessageKind.ARTICLE,
            "a-watch",
            {"source": "wire", "headline": "google", "body": two_tag_text + " google"},
        ),
    ]
    await ensure_topics(broker_settings, unique_topics.all_topics(), unique_topics.partitions)
    await produce(broker_settings, to_outbound(records, unique_topics))
    env = {
        **os.environ,
        **unique_topics.as_env(),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": broker_settings.bootstrap_servers,
        "TEXTROUTE_WORKER_APP_ID": f"{unique_topics.email.split('.')[0]}-pipelines",
        "TEXTROUTE_WORKER_PIPELINES_PATH": str(pipelines),
        "TEXTROUTE_WORKER_DATA_DIR": str(tmp_path / "faust"),
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        "TEXTROUTE_INFERENCE_THREADS": "1",
    }
    worker = start_worker(env)
    wanted = {r.key for r in records}
    async with Watcher(broker_settings, unique_topics) as watcher:
        await watcher.wait_until(lambda o: o.seen() >= wanted, worker)
    out = await read_outputs(broker_settings, unique_topics)
    assert out.dead == []
    events: dict[str, RoutingEvent] = {e.message_id: e for e in out.events}

    ticket = events["t-en"]
    assert ticket.pipeline == "ticket"
    assert ticket.route == "tickets.billing", ticket.reasons
    assert ticket.attributes["priority"].label == "Business"
    assert ticket.model_text is not None and ticket.model_text.language == "en"

    german = events["t-de"]
    assert german.route == "tickets.language"
    assert german.reasons[0].rule == "language:unsupported"
    assert [r.queue for r in german.routes] == ["tickets.language"]

    mail = events["e-html"]
    assert mail.pipeline == "email" and mail.model_text is not None
    text = mail.model_text.text
    assert text is not None and mail.model_text.cleaned
    assert mail.model_text.sha256 == hashlib.sha256(text.encode()).hexdigest()
    assert mail.model_text.length == len(text)
    assert "john smith from google" in text
    assert "<" not in text, "HTML became text"
    assert "cup match" not in text, "the quoted reply is cut"
    assert "Finance team" not in text, "the signature is cut"
    assert mail.entities, "the tagger found names in the cleaned text"
    for entity in mail.entities:
        assert text[entity.start : entity.end] == entity.text, "offsets index the model text"
    assert mail.route == "mail.finance"

    article = events["a-two"]
    assert article.pipeline == "article"
    assert len(article.labels) >= 2, article.labels
    desks = {r.queue for r in article.routes}
    assert len(desks) >= 2 and all(d.startswith("desk.") for d in desks), article.routes
    assert {r.rule for r in article.routes} == {f"category:{ls.label}" for ls in article.labels}

    watched = events["a-watch"]
    assert watched.route == "desk.watch"
    assert {r.queue for r in watched.routes} >= {"desk.watch", *desks}
