"""`textroute demo`: broker, models, worker, a mixed batch of messages, the routed results."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from schemas.artifact import read_manifest
from schemas.errors import ArtifactError
from schemas.events import DeadLetter, RoutingEvent
from schemas.manifest import FileRole
from stream.broker import EmbeddedBroker
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings, WorkerSettings
from stream.errors import StreamConfigError
from stream.inputs import to_outbound
from stream.samples import sample_records
from stream.topics import ensure_topics, produce, read_topics, worker_topic_limits
from stream.view import dead_letters_table, decode_outputs, events_table, origin_id

AG_NEWS_LABELS = "World,Sports,Business,Sci/Tech"
_STOP_TIMEOUT_S = 60.0


def _default_data_dir() -> Path:
    # The shared data sits beside the checkout: <parent>/shared/data.
    return Path(__file__).resolve().parents[2] / "shared" / "data"


class DemoSettings(BaseSettings):
    """What the demo sends and, when models are missing, how it trains quick ones."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_DEMO_", extra="ignore")

    messages: int = Field(default=60, ge=1, le=100_000)
    malformed_ratio: float = Field(default=0.1, ge=0.0, le=1.0)
    seed: int = 0
    models_dir: Path = Path("models")
    data_dir: Path = Field(default_factory=_default_data_dir)
    base_model: str = Field(default="offline:minilm", description="Base model for training.")
    classifier_rows: int = Field(default=4000, ge=100, description="AG News rows to train on.")
    classifier_steps: int = Field(default=250, ge=1)
    ner_sentences: int = Field(default=3000, ge=100, description="CoNLL sentences to train on.")
    ner_steps: int = Field(default=250, ge=1)
    bootstrap_servers: str | None = Field(
        default=None, description="Use this Kafka instead of starting the embedded broker."
    )
    wait_s: float = Field(default=180.0, gt=0, description="Max wait for every message.")
    work_dir: Path = Field(default=Path("runs/demo"), description="Logs of worker and broker.")


def _step(console: Console, n: int, text: str) -> None:
    console.rule(f"[bold]{n}/6[/] {text}", align="left")


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
            "--models-dir with trained classifier/ and ner/ artifacts."
        )


def _textroute(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", *args]


def _export(console: Console, artifact: Path) -> None:
    # One export, gates measured but not enforced: a quick demo model may miss a production
    # parity gate (on 512 rows one flipped text is 0.2 points); its table shows which.
    _run(console, _textroute("export", str(artifact), "--no-gates"), f"exporting {artifact}")


def ensure_models(settings: DemoSettings, console: Console) -> tuple[Path, Path]:
    """Existing classifier and NER artifacts, or quick ones trained from the shared data."""
    classifier, ner = settings.models_dir / "classifier", settings.models_dir / "ner"
    data = settings.data_dir
    common = ["--base-model", settings.base_model, "--batch-size", "16", "--patience", "0"]
    missing = [path for path in (classifier, ner) if not _ready_artifact(path)]
    if missing and importlib.util.find_spec("training") is None:
        raise StreamConfigError(
            f"no trained model at {', '.join(map(str, missing))}, and this install cannot train "
            "one: pip install 'textroute[train]', or pass --models-dir with trained artifacts."
        )
    if _ready_artifact(classifier):
        console.print(f"classifier: using {classifier}")
    else:
        train_csv = data / "ag_news" / "train_subset_alps10k_description_only.csv"
        if not train_csv.is_file():
            raise StreamConfigError(
                f"no classifier at {classifier} and no AG News data at {train_csv}; set "
                "TEXTROUTE_DEMO_DATA_DIR to the shared data or --models-dir to trained models."
            )
        console.print(f"classifier: none at {classifier}; training a quick one on AG News")
        _run(
            console,
            _textroute(
                "train", "classify", str(train_csv), "--text-column", "description",
                "--label-names", AG_NEWS_LABELS, "--limit", str(settings.classifier_rows),
                "--max-steps", str(settings.classifier_steps), "--no-baseline",
                "--output", str(classifier), "--name", "demo-classifier", *common,
            ),
            "training the classifier",
        )  # fmt: skip
        _export(console, classifier)
    if _ready_artifact(ner):
        console.print(f"ner: using {ner}")
    else:
        conll = data / "conll2003"
        if not (conll / "train.txt").is_file():
            raise StreamConfigError(
                f"no NER model at {ner} and no CoNLL-2003 data in {conll}; set "
                "TEXTROUTE_DEMO_DATA_DIR to the shared data or --models-dir to trained models."
            )
        console.print(f"ner: none at {ner}; training a quick one on CoNLL-2003")
        _run(
            console,
            _textroute(
                "train", "ner", str(conll), "--limit", str(settings.ner_sentences),
                "--eval-limit", "300", "--max-steps", str(settings.ner_steps),
                "--output", str(ner), "--name", "demo-ner", *common,
            ),
            "training the NER model",
        )  # fmt: skip
        _export(console, ner)
    return classifier, ner


def _start_worker(
    bootstrap: str, classifier: Path, ner: Path, app_id: str, work_dir: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        # Each demo run is a new consumer group; keep its faust directory with the run's logs.
        "TEXTROUTE_WORKER_DATA_DIR": str(work_dir / "faust"),
    }
    cmd = [
        sys.executable, "-m", "stream", "worker", "--bootstrap", bootstrap,
        "--classifier", str(classifier), "--ner", str(ner), "--app-id", app_id,
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


def _summary(events: list[RoutingEvent], dead: list[DeadLetter], sent: int) -> Table:
    table = Table(title="Summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_row("sent", str(sent))
    for route, n in sorted(Counter(e.route for e in events).items()):
        table.add_row(f"routed to {route}", str(n))
    for reason, n in sorted(Counter(d.reason.value for d in dead).items()):
        table.add_row(f"dead letter: {reason}", str(n))
    table.add_row("missing", str(max(0, sent - len(events) - len(dead))))
    return table


def run_demo(settings: DemoSettings, console: Console) -> int:
    """Run the whole demo; 0 when every message was routed or dead-lettered, else 1."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    topics = TopicSettings()
    embedded: EmbeddedBroker | None = None
    worker: subprocess.Popen[bytes] | None = None
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
        classifier, ner = ensure_models(settings, console)

        _step(console, 3, "Routing worker")
        worker_log = settings.work_dir / "worker.log"
        worker = _start_worker(
            bootstrap, classifier, ner, f"textroute-demo-{tag}", settings.work_dir
        )
        console.print(f"worker pid {worker.pid}, JSON logs in {worker_log}")

        _step(console, 4, f"Sending {settings.messages} emails, tickets and articles")
        records = list(
            sample_records(
                settings.messages,
                malformed_ratio=settings.malformed_ratio,
                seed=settings.seed,
                id_prefix=f"demo-{tag}",
            )
        )
        asyncio.run(produce(broker, to_outbound(records, topics)))
        bad = sum(r.expected_reason is not None for r in records)
        console.print(f"sent {len(records)} messages ({bad} deliberately malformed)")

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
        console.print(dead_letters_table(dead))
        console.print(_summary(events, dead, len(records)))
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
