"""`textroute demo`: broker, models, a three-pipeline worker, real messages, the routed results."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from schemas.artifact import read_manifest
from schemas.errors import ArtifactError
from schemas.events import DeadLetter, RoutingEvent
from schemas.manifest import FileRole
from schemas.messages import MessageKind
from stream.broker import EmbeddedBroker
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings, WorkerSettings
from stream.datasets import (
    REUTERS_TEST,
    REUTERS_TRAIN,
    TICKETS_CSV,
    Row,
    read_reuters,
    read_tickets,
    split_tickets,
    write_tickets,
)
from stream.demo_mix import DemoMessage, MixCounts, demo_messages
from stream.errors import StreamConfigError
from stream.inputs import to_outbound
from stream.pipeline_config import check_models, classes_of, load_pipelines
from stream.topics import ensure_topics, produce, read_topics, worker_topic_limits
from stream.view import dead_letters_table, decode_outputs, events_table, origin_id

AG_NEWS_LABELS = "World,Sports,Business,Sci/Tech"
_STOP_TIMEOUT_S = 60.0
_STEPS = 6

#: Reuters topics -> desks (the most frequent topics; the rest go to the default desk).
TOPIC_DESKS = {
    "earn": "desk.earnings",
    "acq": "desk.deals",
    "money-fx": "desk.markets",
    "interest": "desk.markets",
    "money-supply": "desk.markets",
    "dlr": "desk.markets",
    "crude": "desk.energy",
    "nat-gas": "desk.energy",
    "grain": "desk.commodities",
    "wheat": "desk.commodities",
    "corn": "desk.commodities",
    "oilseed": "desk.commodities",
    "sugar": "desk.commodities",
    "coffee": "desk.commodities",
    "trade": "desk.economy",
    "gnp": "desk.economy",
    "bop": "desk.economy",
}
#: Institutions the article desk watches: an article naming one also goes to their desk.
WATCHED_ORGS = [
    "OPEC", "Fed", "Federal Reserve", "Bundesbank", "Bank of Japan", "Bank of England",
    "IMF", "World Bank", "GATT", "EC", "Treasury", "USDA", "SEC",
]  # fmt: skip
#: The languages expected in the ticket traffic; only English is routed by the model.
TICKET_LANGUAGES = ["en", "de", "es", "fr", "pt"]


def _default_data_dir() -> Path:
    # The shared data sits beside the checkout: <parent>/shared/data.
    return Path(__file__).resolve().parents[2] / "shared" / "data"


class DemoSettings(BaseSettings):
    """What the demo sends and, when models are missing, how it trains quick ones."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_DEMO_", extra="ignore")

    messages: int = Field(
        default=65, ge=1, le=100_000, description="Tickets, articles, emails and malformed."
    )
    malformed_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    seed: int = 0
    models_dir: Path = Path("models")
    data_dir: Path = Field(default_factory=_default_data_dir)
    base_model: str = Field(default="offline:minilm", description="Base model for training.")
    classifier_rows: int = Field(default=4000, ge=100, description="AG News rows to train on.")
    classifier_steps: int = Field(default=250, ge=1)
    ner_sentences: int = Field(default=3000, ge=100, description="CoNLL sentences to train on.")
    ner_steps: int = Field(default=250, ge=1)
    ticket_steps: int = Field(default=200, ge=1, description="Steps of the ticket queue model.")
    reuters_rows: int = Field(default=2000, ge=100, description="Reuters articles to train on.")
    reuters_steps: int = Field(default=250, ge=1, description="Steps of the news tagger.")
    bootstrap_servers: str | None = Field(
        default=None, description="Use this Kafka instead of starting the embedded broker."
    )
    wait_s: float = Field(default=240.0, gt=0, description="Max wait for every message.")
    work_dir: Path = Field(
        default=Path("runs/demo"), description="Logs, the pipelines file, the ticket split."
    )


@dataclass(frozen=True)
class DemoModels:
    """The artifacts the demo's pipelines serve."""

    classifier: Path  # AG News topics: the email pipeline
    ner: Path  # CoNLL-2003 entities: emails and articles
    tickets: Path  # help-desk queues: the ticket pipeline
    reuters: Path  # Reuters topics, multi-label: the article pipeline

    @classmethod
    def under(cls, models_dir: Path) -> DemoModels:
        return cls(
            classifier=models_dir / "classifier",
            ner=models_dir / "ner",
            tickets=models_dir / "tickets-queue",
            reuters=models_dir / "reuters",
        )


def _step(console: Console, n: int, text: str) -> None:
    console.rule(f"[bold]{n}/{_STEPS}[/] {text}", align="left")


def _ready_artifact(path: Path) -> bool:
    """Whether `path` holds a verified artifact with its int8 ONNX model."""
    try:
        manifest = read_manifest(path)
    except ArtifactError:
        return False
    return manifest.file_for(FileRole.ONNX_INT8) is not None


def _run(console: Console, cmd: list[str], what: str) -> None:
    console.print(f"[dim]$ {' '.join(cmd)}[/]")
    # The child writes its own progress bars straight to this terminal.
    code = subprocess.call(cmd)
    if code != 0:
        raise StreamConfigError(
            f"{what} failed (exit {code}); run the command above to see why, or pass "
            "--models-dir with trained classifier/, ner/, tickets-queue/ and reuters/ artifacts."
        )


def _textroute(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", *args]


def _export(console: Console, artifact: Path, *extra: str) -> None:
    # One export, gates measured but not enforced: a quick demo model may miss a production
    # parity gate (on 512 rows one flipped text is 0.2 points); its table shows which.
    cmd = _textroute("export", str(artifact), "--no-gates", *extra)
    _run(console, cmd, f"exporting {artifact}")


def ticket_split(settings: DemoSettings) -> tuple[list[Row], list[Row], list[Row]] | None:
    """All ticket rows and the English train and test parts (the bench's split), or None when
    the data is not there."""
    source = settings.data_dir / TICKETS_CSV
    if not source.is_file():
        return None
    rows = read_tickets(source)
    train, test = split_tickets(rows)
    return rows, train, test


def ensure_models(settings: DemoSettings, console: Console) -> DemoModels:
    """Existing artifacts, or quick ones trained from the shared data (each needs its data;
    every missing piece is named before anything trains)."""
    models = DemoModels.under(settings.models_dir)
    data = settings.data_dir
    sources = {
        models.classifier: data / "ag_news" / "train_subset_alps10k_description_only.csv",
        models.ner: data / "conll2003" / "train.txt",
        models.tickets: data / TICKETS_CSV,
        models.reuters: data / REUTERS_TRAIN,
    }
    missing = [path for path in sources if not _ready_artifact(path)]
    for path in sources:
        if path not in missing:
            console.print(f"{path.name}: using {path}")
    if not missing:
        return models
    if importlib.util.find_spec("training") is None:
        raise StreamConfigError(
            f"no trained model at {', '.join(map(str, missing))}, and this install cannot train "
            "one: pip install 'textroute[train]', or pass --models-dir with trained artifacts."
        )
    no_data = [f"{path} (data {sources[path]})" for path in missing if not sources[path].is_file()]
    if no_data:
        raise StreamConfigError(
            f"no model and no data to train one for {'; '.join(no_data)}; set "
            "TEXTROUTE_DEMO_DATA_DIR to the shared data or --models-dir to trained models."
        )
    common = ["--base-model", settings.base_model, "--batch-size", "16", "--patience", "0"]
    if models.classifier in missing:
        console.print(f"classifier: none at {models.classifier}; training a quick one on AG News")
        _run(
            console,
            _textroute(
                "train", "classify", str(sources[models.classifier]),
                "--text-column", "description", "--label-names", AG_NEWS_LABELS,
                "--limit", str(settings.classifier_rows),
                "--max-steps", str(settings.classifier_steps), "--no-baseline",
                "--output", str(models.classifier), "--name", "demo-classifier", *common,
            ),
            "training the classifier",
        )  # fmt: skip
        _export(console, models.classifier)
    if models.ner in missing:
        console.print(f"ner: none at {models.ner}; training a quick one on CoNLL-2003")
        _run(
            console,
            _textroute(
                "train", "ner", str(sources[models.ner].parent),
                "--limit", str(settings.ner_sentences), "--eval-limit", "300",
                "--max-steps", str(settings.ner_steps),
                "--output", str(models.ner), "--name", "demo-ner", *common,
            ),
            "training the NER model",
        )  # fmt: skip
        _export(console, models.ner)
    if models.tickets in missing:
        split = ticket_split(settings)
        assert split is not None  # its data was checked above
        # The train part only: the demo sends rows of the test part.
        train_csv = settings.work_dir / "data" / "tickets-train.csv"
        test_csv = settings.work_dir / "data" / "tickets-test.csv"
        write_tickets(split[1], train_csv)
        write_tickets(split[2], test_csv)
        console.print(
            f"tickets-queue: none at {models.tickets}; training a quick one on "
            f"{len(split[1])} English help-desk tickets (held out: {len(split[2])})"
        )
        _run(
            console,
            _textroute(
                "train", "classify", str(train_csv), "--text-column", "subject,body",
                "--label-column", "queue", "--max-steps", str(settings.ticket_steps),
                "--no-baseline", "--output", str(models.tickets),
                "--name", "demo-tickets-queue", *common,
            ),
            "training the ticket queue model",
        )  # fmt: skip
        # Gate rows named outright: export reads a manifest's eval data with a `label` column.
        _export(console, models.tickets, "--data", str(test_csv), "--label-column", "queue")
    if models.reuters in missing:
        console.print(
            f"reuters: none at {models.reuters}; training a quick multi-label tagger on "
            f"{settings.reuters_rows} Reuters-21578 articles"
        )
        # Every topic of the data set, though the first rows show only some: the export's gate
        # rows and the desks may name any of them.
        topics = sorted({t for row in read_reuters(sources[models.reuters]) for t in _topics(row)})
        _run(
            console,
            _textroute(
                "train", "multilabel", str(sources[models.reuters]),
                "--text-column", "title,body", "--label-column", "labels",
                "--label-names", ",".join(topics),
                "--limit", str(settings.reuters_rows),
                "--max-steps", str(settings.reuters_steps), "--no-baseline",
                "--output", str(models.reuters), "--name", "demo-reuters-topics", *common,
            ),
            "training the news tagger",
        )  # fmt: skip
        _export(console, models.reuters, "--data", str(settings.data_dir / REUTERS_TEST))
    return models


def _topics(row: dict[str, object]) -> list[str]:
    labels = row.get("labels")
    return [str(t) for t in labels] if isinstance(labels, list) else []


def slug(label: str) -> str:
    """A label as part of a queue name: 'Billing and Payments' -> 'billing-and-payments'."""
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "other"


def _labels_of(artifact: Path) -> list[str]:
    return classes_of(read_manifest(artifact, verify=False))


def pipelines_config(models: DemoModels) -> dict[str, object]:
    """The demo's pipelines file as data: tickets by queue with a language check, articles by
    topics (several desks each) with a watch list, emails cleaned then by topic. Queue rules
    come from each model's labels, so any trained model fits."""
    topics = set(_labels_of(models.reuters))
    return {
        "version": 1,
        "models": {
            "ticket-queue": str(models.tickets.resolve()),
            "news-topics": str(models.reuters.resolve()),
            "mail-topics": str(models.classifier.resolve()),
            "ner": str(models.ner.resolve()),
        },
        "pipelines": {
            "ticket": {
                "classifier": "ticket-queue",
                "rules": {
                    "default_queue": "support.triage",
                    "categories": {
                        label: f"support.{slug(label)}" for label in _labels_of(models.tickets)
                    },
                    "language": {
                        "supported": ["en"],
                        "candidates": TICKET_LANGUAGES,
                        "queue": "support.translation",
                    },
                },
            },
            "article": {
                "classifier": "news-topics",
                "ner": "ner",
                "allow_unmapped_labels": True,
                "rules": {
                    "default_queue": "desk.general",
                    "categories": {t: d for t, d in TOPIC_DESKS.items() if t in topics},
                    "entity_rules": [
                        {
                            "name": "watchlist-institutions",
                            "type": "ORG",
                            "values": WATCHED_ORGS,
                            "queue": "desk.policy-watch",
                        }
                    ],
                },
            },
            "email": {
                "classifier": "mail-topics",
                "ner": "ner",
                # include_text so the demo can show what the models read; off by default,
                # as an email's text may be personal data.
                "text": {
                    "clean_html": True,
                    "strip_quotes": True,
                    "strip_signature": True,
                    "include_text": True,
                },
                "rules": {
                    "default_queue": "mail.triage",
                    "review": {"queue": "mail.review", "min_confidence": 0.4},
                    "categories": {
                        label: f"mail.{slug(label)}" for label in _labels_of(models.classifier)
                    },
                },
            },
        },
    }


def write_pipelines(models: DemoModels, path: Path) -> Path:
    """Write the demo's pipelines file (see pipelines_config) to `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Written by `textroute demo` for its worker (textroute worker --pipelines FILE);\n"
        "# see deploy/pipelines.example.yaml for every option.\n"
    )
    body = yaml.safe_dump(pipelines_config(models), sort_keys=False, allow_unicode=True)
    path.write_text(header + body, encoding="utf-8")
    return path


def _start_worker(
    bootstrap: str, pipelines: Path, app_id: str, work_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        # Each demo run is a new consumer group; keep its faust directory with the run's logs.
        "TEXTROUTE_WORKER_DATA_DIR": str(work_dir / "faust"),
    }
    cmd = [
        sys.executable, "-m", "stream", "worker", "--bootstrap", bootstrap,
        "--pipelines", str(pipelines), "--app-id", app_id,
    ]  # fmt: skip
    with (work_dir / "worker.log").open("ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _stop_worker(proc: subprocess.Popen[bytes], console: Console) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            console.print("[yellow]worker did not stop in time; killing it[/]")
            proc.kill()
            return proc.wait()
    return proc.returncode


async def _collect(
    broker: BrokerSettings,
    topics: TopicSettings,
    ids: set[str],
    deadline: float,
    worker: subprocess.Popen[bytes],
) -> tuple[list[RoutingEvent], list[DeadLetter]]:
    """Read the output topics until every id has an event or a dead letter (or time is up)."""
    events: dict[str, RoutingEvent] = {}
    dead: dict[str, DeadLetter] = {}
    while time.monotonic() < deadline and worker.poll() is None:
        records = await read_topics(broker, [topics.routed, topics.dead_letter], idle_s=1.0)
        new_events, new_dead, _ = decode_outputs(records, topics.routed)
        events.update({e.message_id: e for e in new_events if e.message_id in ids})
        for d in new_dead:
            origin = origin_id(d)
            if origin in ids:
                dead[origin] = d
        if ids <= set(events) | set(dead):
            break
        await asyncio.sleep(1.0)
    return list(events.values()), list(dead.values())


def _mix_table(messages: Sequence[DemoMessage]) -> Table:
    table = Table(title="Sent")
    table.add_column("kind")
    table.add_column("what")
    table.add_column("count", justify="right")
    for (kind, note), n in Counter((m.kind.value, m.note) for m in messages).items():
        table.add_row(kind, note, str(n))
    return table


def _body_of(message: DemoMessage) -> str:
    try:
        value = json.loads(message.record.value)
    except ValueError:
        return ""
    return str(value.get("body", "")) if isinstance(value, dict) else ""


def cleaning_table(events: Sequence[RoutingEvent], messages: Sequence[DemoMessage]) -> Table:
    """What the email pipeline made of each email it changed: the body sent (HTML, quoted
    reply, signature) against the text the models read."""
    sent = {m.record.key: m for m in messages}
    table = Table(title="Email cleaning: sent vs what the models read")
    table.add_column("message", style="cyan", no_wrap=True)
    table.add_column("sent", justify="right")
    table.add_column("read", justify="right")
    table.add_column("what the models read")
    for e in events:
        text = e.model_text
        if text is None or not text.cleaned or e.message_id not in sent:
            continue
        read = " ".join((text.text or "").split())
        shown = read if len(read) <= 90 else read[:89] + "…"
        table.add_row(
            e.message_id, f"{len(_body_of(sent[e.message_id]))}c", f"{text.length}c", shown
        )
    return table


def summary_table(
    events: Sequence[RoutingEvent], dead: Sequence[DeadLetter], messages: Sequence[DemoMessage]
) -> Table:
    """Counts per pipeline and route (a multi-label article counts at each of its desks), how
    the quick models did against the data sets' own labels, dead letters, and what is missing."""
    table = Table(title="Summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("sent", str(len(messages)))
    by_pipeline: dict[str, list[RoutingEvent]] = {}
    for e in events:
        by_pipeline.setdefault(e.pipeline, []).append(e)
    for pipeline, routed in sorted(by_pipeline.items()):
        table.add_row(f"{pipeline}: routed", str(len(routed)), style="bold")
        routes = Counter(r.queue for e in routed for r in (e.routes or [])) or Counter(
            e.route for e in routed
        )
        for route, n in sorted(routes.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(f"  -> {route}", str(n))
    gold = {m.record.key: m for m in messages if m.gold}
    held_out = [
        e
        for e in events
        if e.message_id in gold
        and gold[e.message_id].note == "held-out ticket"
        and e.route != "support.translation"
    ]
    if held_out:
        right = sum(e.category in gold[e.message_id].gold for e in held_out)
        table.add_row("ticket: queue = the data set's", f"{right} of {len(held_out)}")
    articles = [e for e in events if e.kind is MessageKind.ARTICLE and e.message_id in gold]
    if articles:
        hit = sum(
            bool({x.label for x in e.labels} & set(gold[e.message_id].gold)) for e in articles
        )
        multi = sum(len(e.labels) >= 2 for e in articles)
        table.add_row("article: a topic of the data set's found", f"{hit} of {len(articles)}")
        table.add_row("article: 2+ topics given", str(multi))
    cleaned = sum(e.model_text is not None and e.model_text.cleaned for e in events)
    if cleaned:
        table.add_row("email: text cleaned", str(cleaned))
    for reason, n in sorted(Counter(d.reason.value for d in dead).items()):
        table.add_row(f"dead letter: {reason}", str(n))
    table.add_row("missing", str(max(0, len(messages) - len(events) - len(dead))))
    return table


def _messages(settings: DemoSettings, prefix: str, console: Console) -> list[DemoMessage]:
    split = ticket_split(settings)
    reuters = settings.data_dir / REUTERS_TEST
    if split is None:
        console.print(f"[yellow]no tickets data at {settings.data_dir / TICKETS_CSV}[/]: "
                      "sending generated sample tickets")  # fmt: skip
    if not reuters.is_file():
        console.print(f"[yellow]no Reuters test file at {reuters}[/]: sending sample articles")
    return demo_messages(
        MixCounts.of(settings.messages, settings.malformed_ratio),
        prefix=prefix,
        seed=settings.seed,
        ticket_test=split[2] if split else None,
        ticket_rows=split[0] if split else None,
        reuters_test=reuters if reuters.is_file() else None,
    )


def run_demo(settings: DemoSettings, console: Console) -> int:
    """Run the whole demo; 0 when every message was routed or dead-lettered, else 1."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings()
    embedded: EmbeddedBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
    complete = False
    try:
        _step(console, 1, "Kafka broker")
        if settings.bootstrap_servers:
            bootstrap = settings.bootstrap_servers
            console.print(f"using Kafka at {bootstrap}")
        else:
            broker_log = settings.work_dir / "broker.log"
            embedded = EmbeddedBroker(EmbeddedBrokerSettings(port=0, log_file=broker_log))
            embedded.start()
            bootstrap = embedded.bootstrap
            console.print(f"embedded tansu broker at [bold]{bootstrap}[/] (log {broker_log})")
        broker = BrokerSettings(bootstrap_servers=bootstrap)
        limits = worker_topic_limits(WorkerSettings(topics=topics))
        asyncio.run(ensure_topics(broker, topics.all_topics(), topics.partitions, configs=limits))

        _step(console, 2, "Models")
        models = ensure_models(settings, console)

        _step(console, 3, "Routing worker: ticket, article and email pipelines")
        pipelines = write_pipelines(models, settings.work_dir / "pipelines.yaml")
        # Checked here as the worker checks it, so a model that does not fit stops the demo
        # with one line (PipelineConfigError) rather than a worker dying in its log.
        check_models(load_pipelines(pipelines))
        worker_log = settings.work_dir / "worker.log"
        worker = _start_worker(bootstrap, pipelines, f"textroute-demo-{tag}", settings.work_dir)
        console.print(f"pipelines file {pipelines}")
        console.print(f"worker pid {worker.pid}, JSON logs in {worker_log}")

        _step(console, 4, "Sending tickets, articles and emails")
        messages = _messages(settings, f"demo-{tag}", console)
        records = [m.record for m in messages]
        asyncio.run(produce(broker, to_outbound(records, topics)))
        console.print(_mix_table(messages))

        _step(console, 5, "Routed events and dead letters")
        ids = {r.key for r in records}
        deadline = time.monotonic() + settings.wait_s
        events, dead = asyncio.run(_collect(broker, topics, ids, deadline, worker))
        if worker.poll() is not None:
            console.print(
                f"[red]the worker exited early (code {worker.returncode}); see {worker_log}"
            )
        events.sort(key=lambda e: e.message_id)
        console.print(events_table(events))
        console.print(cleaning_table(events, messages))
        console.print(dead_letters_table(dead))
        console.print(summary_table(events, dead, messages))
        complete = len(events) + len(dead) >= len(records)
    finally:
        _step(console, 6, "Stopping")
        if worker is not None:
            code = _stop_worker(worker, console)
            console.print(f"worker stopped (exit {code})")
        if embedded is not None:
            embedded.stop()
            console.print("broker stopped")
    return 0 if complete else 1
