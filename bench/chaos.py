"""Chaos benchmark: at-least-once routing of every message while workers are killed and stalled.

The embedded broker runs behind a fault proxy (stream.kafka_proxy), topics have 6 partitions,
and 2 workers (`python -m stream worker`, one consumer group) route a stream of sample
messages, some malformed, among them the poison kinds of stream.samples (a lone-surrogate id,
a 5,000-digit integer, a ~900 KB payload, 100,000 nested arrays, invalid UTF-8). Meanwhile, on
a seeded random schedule:

- every ~20 s a random worker is SIGKILLed and restarted at once (a fresh process);
- every ~15 s the workers' Produce requests are held in the proxy for a few seconds, then
  released: a stalled broker as their producers see it, while fetches and commits flow on.

When every input has an output (routing event or dead letter), or the timeout passes, the
workers get SIGTERM and the output topics are read back: lost inputs (must be 0), duplicates
(redone work, allowed by at-least-once), dead letters by reason against the reasons expected,
the faults injected, and throughput. The exit code is 0 only when nothing was lost.

    python bench/chaos.py                            # models/classifier + models/ner (make demo)
    python bench/chaos.py --model-dir models/multitask
    python bench/chaos.py --tiny-models              # tiny trained models: the delivery path
    python bench/chaos.py --smoke                    # 3,000 messages, a kill every ~8 s
    python bench/chaos.py --messages 20000 --rate 500 --json chaos.json --keep
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Container, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas.events import DeadLetter, DeadLetterReason
from stream.broker import EmbeddedBroker, free_port
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings, WorkerSettings
from stream.errors import StreamError
from stream.inputs import to_outbound
from stream.kafka_proxy import KafkaFaultProxy
from stream.logs import configure_logging
from stream.samples import POISON_REASONS, SampleRecord, sample_records
from stream.topics import (
    ReadRecord,
    TopicFollower,
    ensure_topics,
    producer,
    read_topics,
    worker_topic_limits,
)
from stream.view import decode_outputs, origin_id

REPO = Path(__file__).resolve().parents[1]
console = Console()

#: Defaults of the full run and of --smoke, for the flags left unset.
FULL = {
    "messages": 100_000,
    "rate": 0.0,
    "kill_every": 20.0,
    "hold_every": 15.0,
    "hold_s": 3.0,
    "timeout": 3600.0,
}
SMOKE = {
    "messages": 3_000,
    "rate": 150.0,
    "kill_every": 8.0,
    "hold_every": 6.0,
    "hold_s": 2.0,
    "timeout": 300.0,
}
STOP_GRACE_S = 60.0


class ChaosError(Exception):
    """The benchmark could not run; its message is the one line shown."""


# ---- workers ------------------------------------------------------------------------------


@dataclass
class Worker:
    """One worker slot: a `python -m stream worker` subprocess, restarted in place."""

    index: int
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log_start: int = field(default=0, init=False, repr=False)

    def start(self) -> int:
        """Start a fresh process; its pid."""
        with self.log_path.open("ab") as log:
            self._log_start = log.tell()
            # A session of its own: a Ctrl-C in the terminal reaches the bench, which stops
            # the workers itself, not the workers mid-batch.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream", "worker"],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        return self.proc.pid

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else -1

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def assigned(self) -> bool:
        """Whether the log shows a non-empty partition assignment."""
        for line in self.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if (
                    isinstance(entry, dict)
                    and entry.get("event") == "worker.assigned"
                    and entry.get("partitions")
                ):
                    return True
        return False

    def running(self) -> bool:
        """Whether the current process got as far as running the worker (a SIGTERM before
        that, while it imports and loads models, ends it with -15 and costs nothing)."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_start)
            return b'"worker.starting"' in log.read()

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_GRACE_S; the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.proc.wait, STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode


def worker_env(
    args: argparse.Namespace, bootstrap: str, topics: TopicSettings, app_id: str
) -> dict[str, str]:
    env = {
        **os.environ,
        **topics.as_env(),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": bootstrap,
        "TEXTROUTE_WORKER_APP_ID": app_id,
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        "TEXTROUTE_WORKER_LOG_LEVEL": "INFO",
        "TEXTROUTE_WORKER_LOG_JSON": "true",
        # Two workers on few cores: one inference thread each.
        "TEXTROUTE_INFERENCE_THREADS": "1",
    }
    if args.model_dir:
        env["TEXTROUTE_WORKER_MODEL_DIR"] = str(args.model_dir)
    else:
        env["TEXTROUTE_WORKER_CLASSIFIER_DIR"] = str(args.classifier)
        env["TEXTROUTE_WORKER_NER_DIR"] = str(args.ner)
    if args.rules:
        env["TEXTROUTE_WORKER_RULES_PATH"] = str(args.rules)
    if args.batch_size:
        env["TEXTROUTE_WORKER_BATCH_SIZE"] = str(args.batch_size)
    return env


# ---- following the outputs ----------------------------------------------------------------


def dead_letter_origin(letter: DeadLetter, ids: Container[str]) -> str | None:
    """The input a dead letter came from: its message id, else its Kafka key, which the bench
    sets to the message id, so a record whose id did not survive parsing is traced too."""
    found = origin_id(letter)
    if found in ids or letter.key_b64 is None:
        return found
    key = base64.b64decode(letter.key_b64).decode("utf-8", errors="replace")
    return key if key in ids else found


class OutputIndex:
    """The inputs that have an output so far, kept up to date from a TopicFollower's records.

    Events are keyed by message id, so only dead letters (a few per cent) are decoded: the
    bench shares the cores with the workers it measures.
    """

    def __init__(self, routed_topic: str, ids: set[str]) -> None:
        self.routed_topic = routed_topic
        self.ids = ids
        self.seen: set[str] = set()
        self.last_new = 0.0
        self._scanned = 0

    def update(self, records: list[ReadRecord]) -> None:
        end = len(records)
        before = len(self.seen)
        for record in records[self._scanned : end]:
            origin: str | None
            if record.topic == self.routed_topic:
                origin = (record.key or b"").decode("utf-8", errors="replace")
            else:
                try:
                    letter = DeadLetter.model_validate_json(record.value or b"")
                    origin = dead_letter_origin(letter, self.ids)
                except ValidationError:
                    continue
            if origin in self.ids:
                self.seen.add(origin)
        self._scanned = end
        if len(self.seen) > before:
            self.last_new = time.monotonic()


# ---- sending ------------------------------------------------------------------------------


async def send(
    broker: BrokerSettings,
    topics: TopicSettings,
    records: Sequence[SampleRecord],
    *,
    rate: float,
    chunk: int,
) -> None:
    """Send in chunks, each acknowledged before the next; `rate` messages/s, 0: flat out."""
    outbound = to_outbound(records, topics)
    async with producer(broker) as prod:
        due = time.monotonic()
        for start in range(0, len(outbound), chunk):
            part = outbound[start : start + chunk]
            futures = [await prod.send(r.topic, r.value, key=r.key) for r in part]
            await asyncio.gather(*futures)
            if rate > 0:
                due += len(part) / rate
                await asyncio.sleep(max(0.0, due - time.monotonic()))


# ---- chaos --------------------------------------------------------------------------------


@dataclass
class ChaosTally:
    """The faults injected and what the workers did on their own."""

    kills: int = 0
    holds: int = 0
    held_s: float = 0.0
    unplanned_exits: list[dict[str, Any]] = field(default_factory=list)
    actions: list[dict[str, Any]] = field(default_factory=list)


class Chaos:
    """Kills, restarts and produce holds on a seeded random schedule."""

    def __init__(
        self,
        args: argparse.Namespace,
        workers: list[Worker],
        proxy: KafkaFaultProxy,
        app_id: str,
        progress: Progress,
    ) -> None:
        self.args = args
        self.workers = workers
        self.proxy = proxy
        self.app_id = app_id
        self.progress = progress
        self.rng = random.Random(args.seed)
        self.tally = ChaosTally()
        self.started = time.monotonic()
        self.next_kill = self._after(args.kill_every)
        self.next_hold = self._after(args.hold_every)
        self.hold_until: float | None = None
        self._hold_began = 0.0
        self._held_before = 0

    def _after(self, every: float) -> float:
        # Jittered, so kills and holds fall at every point of the batch cycle.
        return time.monotonic() + every * self.rng.uniform(0.5, 1.5) if every > 0 else float("inf")

    def _say(self, action: str, text: str, seen: int, total: int, **fields: Any) -> None:
        t = time.monotonic() - self.started
        self.tally.actions.append({"t_s": round(t, 2), "action": action, **fields})
        self.progress.console.print(
            f"[dim]{t:7.1f} s[/]  [bold]{action:<7}[/] {text}  "
            f"[dim]({seen:,}/{total:,} with an output)[/]"
        )

    def tick(self, seen: int, total: int) -> None:
        now = time.monotonic()
        for worker in self.workers:
            code = worker.exit_code()
            if code is not None:
                # Not a kill of ours (those restart at once): e.g. a delivery that failed.
                old = worker.pid
                self.tally.unplanned_exits.append(
                    {
                        "worker": worker.index,
                        "pid": old,
                        "code": code,
                        "t_s": round(now - self.started, 2),
                    }
                )
                new = worker.start()
                self._say(
                    "exited",
                    f"[yellow]worker {worker.index} (pid {old}) exited with {code} on its own "
                    f"(log: {worker.log_path}); restarted as pid {new}[/]",
                    seen, total, worker=worker.index, code=code, pid=new,
                )  # fmt: skip
        if self.hold_until is not None and now >= self.hold_until:
            waited = self.release()
            self._say(
                "release",
                f"produce path released ({waited} requests had waited)",
                seen, total, requests=waited,
            )  # fmt: skip
        if self.hold_until is None and now >= self.next_hold:
            self.proxy.hold(client_id_prefix=self.app_id)
            self.hold_until = now + self.args.hold_s * self.rng.uniform(0.5, 1.5)
            self._hold_began = now
            self._held_before = self.proxy.stats.held_requests
            self.tally.holds += 1
            self._say(
                "hold",
                f"workers' produce requests held for {self.hold_until - now:.1f} s",
                seen, total, seconds=round(self.hold_until - now, 2),
            )  # fmt: skip
        if now >= self.next_kill:
            worker = self.workers[self.rng.randrange(len(self.workers))]
            old = worker.pid
            worker.kill()
            new = worker.start()
            self.tally.kills += 1
            self.next_kill = self._after(self.args.kill_every)
            self._say(
                "kill",
                f"worker {worker.index} (pid {old}) SIGKILLed, restarted as pid {new}",
                seen, total, worker=worker.index, killed_pid=old, pid=new,
            )  # fmt: skip

    def release(self) -> int:
        """End the hold in force, if any; how many requests it held."""
        if self.hold_until is None:
            return 0
        self.proxy.release()
        self.tally.held_s += time.monotonic() - self._hold_began
        self.hold_until = None
        self.next_hold = self._after(self.args.hold_every)
        return self.proxy.stats.held_requests - self._held_before


# ---- the report ---------------------------------------------------------------------------


@dataclass
class Figures:
    """What the run measured; --json writes these."""

    inputs: int
    malformed: int
    poison: dict[str, int]
    events: int
    dead_letters: int
    outputs: int
    unreadable_outputs: int
    stray_outputs: int
    stray_dead_letters: list[dict[str, Any]]
    distinct_with_output: int
    lost: int
    lost_ids: list[str]
    duplicates: int
    dead_letters_by_reason: dict[str, dict[str, int]]
    reason_mismatches: int
    mismatch_kinds: list[dict[str, Any]]
    kills: int
    holds: int
    held_s: float
    held_requests: int
    dropped_frames: int
    worker_starts: int
    unplanned_exits: list[dict[str, Any]]
    final_exit_codes: list[int | None]
    final_still_starting: list[bool]
    timed_out: bool
    seconds: float
    inputs_per_s: float
    workers: int
    partitions: int
    settings: dict[str, Any]
    machine: dict[str, Any]
    date: str
    actions: list[dict[str, Any]]


def tally_outputs(
    inputs: Sequence[SampleRecord], records: list[ReadRecord], routed_topic: str
) -> dict[str, Any]:
    """Outputs read back, matched to the inputs by message id."""
    events, dead, unknown = decode_outputs(records, routed_topic)
    by_id = {r.key: r for r in inputs}
    outcomes: dict[str, list[DeadLetterReason | None]] = defaultdict(list)
    for event in events:
        outcomes[event.message_id].append(None)
    strays: list[dict[str, Any]] = []
    for letter in dead:
        origin = dead_letter_origin(letter, by_id)
        outcomes[origin or "?"].append(letter.reason)
        if origin not in by_id and len(strays) < 5:
            strays.append(
                {
                    "origin": origin,
                    "reason": letter.reason.value,
                    "message_id": letter.message_id,
                    "key_b64": letter.key_b64,
                    "source": f"{letter.source.topic}/{letter.source.partition}"
                    f"@{letter.source.offset}",
                }
            )
    lost = [r.key for r in inputs if r.key not in outcomes]
    mismatches: Counter[tuple[str, str, str]] = Counter()
    examples: dict[tuple[str, str, str], str] = {}
    for message_id, got in outcomes.items():
        record = by_id.get(message_id)
        if record is None:
            continue
        for actual in set(got):
            if actual != record.expected_reason:
                kind = (
                    record.damage or "valid",
                    record.expected_reason.value if record.expected_reason else "routed",
                    actual.value if actual else "routed",
                )
                mismatches[kind] += 1
                examples.setdefault(kind, message_id)
    reasons: dict[str, dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(("letters", "inputs", "expected"), 0)
    )
    for letter in dead:
        reasons[letter.reason.value]["letters"] += 1
    for message_id, got in outcomes.items():
        if message_id in by_id:
            for reason in {g for g in got if g is not None}:
                reasons[reason.value]["inputs"] += 1
    for record in inputs:
        if record.expected_reason is not None:
            reasons[record.expected_reason.value]["expected"] += 1
    return {
        "events": len(events),
        "dead_letters": len(dead),
        "outputs": len(events) + len(dead),
        "unreadable_outputs": len(unknown),
        "stray_outputs": sum(len(v) for k, v in outcomes.items() if k not in by_id),
        "stray_dead_letters": strays,
        "distinct_with_output": len(inputs) - len(lost),
        "lost": len(lost),
        "lost_ids": lost[:10],
        "duplicates": sum(len(v) - 1 for k, v in outcomes.items() if k in by_id),
        "dead_letters_by_reason": dict(sorted(reasons.items())),
        "reason_mismatches": sum(mismatches.values()),
        "mismatch_kinds": [
            {"damage": k[0], "expected": k[1], "actual": k[2], "count": n, "example": examples[k]}
            for k, n in mismatches.most_common()
        ],
    }


def report(figures: Figures) -> None:
    f = figures
    summary = Table(title="textroute chaos benchmark", show_header=False)
    summary.add_column(style="bold")
    summary.add_column(justify="right", overflow="fold")
    poison = ", ".join(f"{k} {v}" for k, v in f.poison.items()) or "none"
    rows = [
        ("inputs", f"{f.inputs:,} ({f.malformed:,} malformed; poison: {poison})"),
        ("outputs", f"{f.outputs:,} ({f.events:,} events + {f.dead_letters:,} dead letters)"),
        ("distinct inputs with an output", f"{f.distinct_with_output:,}"),
        ("lost", f"[{'red' if f.lost else 'green'}]{f.lost:,}[/]"),
        ("duplicates (beyond the first)", f"{f.duplicates:,}"),
        ("reason mismatches", f"{f.reason_mismatches:,}"),
        ("outputs of no input / unreadable", f"{f.stray_outputs:,} / {f.unreadable_outputs:,}"),
        ("kills (SIGKILL + restart)", f"{f.kills}"),
        ("produce holds", f"{f.holds} ({f.held_s:.1f} s, {f.held_requests} requests held)"),
        ("frames dropped by the proxy", f"{f.dropped_frames}"),
        ("workers exited on their own", f"{len(f.unplanned_exits)}"),
        ("worker starts", f"{f.worker_starts}"),
        (
            "exit codes at SIGTERM",
            ", ".join(
                f"{c}{' (still starting)' if starting else ''}"
                for c, starting in zip(f.final_exit_codes, f.final_still_starting, strict=True)
            ),
        ),
        ("timed out", "yes" if f.timed_out else "no"),
        ("elapsed", f"{f.seconds:.1f} s"),
        ("throughput", f"{f.inputs_per_s:.1f} inputs/s"),
        ("workers x partitions", f"{f.workers} x {f.partitions}"),
        ("machine", f"{f.machine['platform']}, {f.machine['cores']} cores"),
        ("date", f.date),
    ]
    for name, value in rows:
        summary.add_row(name, value)
    console.print(summary)
    if f.lost_ids:
        console.print(f"[red]lost (first {len(f.lost_ids)}): {', '.join(f.lost_ids)}[/]")
    for stray in f.stray_dead_letters:
        console.print(f"[yellow]dead letter of no input: {stray}[/]")

    reasons = Table(title="Dead letters by reason")
    for col in ("reason", "dead letters", "inputs", "expected"):
        reasons.add_column(col, justify="left" if col == "reason" else "right")
    for reason, n in f.dead_letters_by_reason.items():
        reasons.add_row(reason, f"{n['letters']:,}", f"{n['inputs']:,}", f"{n['expected']:,}")
    console.print(reasons)

    if f.mismatch_kinds:
        mism = Table(title="Expected vs actual outcome, where they differ")
        for col in ("damage", "expected", "actual", "inputs", "e.g."):
            mism.add_column(col, justify="right" if col == "inputs" else "left")
        for m in f.mismatch_kinds:
            mism.add_row(m["damage"], m["expected"], m["actual"], str(m["count"]), m["example"])
        console.print(mism)


# ---- the run ------------------------------------------------------------------------------


# Maps three of the tiny classifier's four labels, as the tests' rules do.
TINY_RULES = """default_queue: triage
review: {queue: human-review, min_confidence: 0.3}
categories: {World: desk.world, Sports: desk.sports, Business: desk.business}
entity_rules:
  - {name: watch, type: ORG, values: [google], queue: desk.watch}
"""


def build_tiny_models(args: argparse.Namespace, out: Path) -> None:
    """Tiny trained classifier and NER artifacts exported to ONNX int8, and rules for them."""
    from training.export import EvalSample, export_artifact
    from training.tiny import (
        TOPICS,
        build_tiny_classifier,
        build_tiny_ner,
        ner_sentences,
        topic_texts,
    )

    console.print("training tiny models (seconds)")
    args.classifier = build_tiny_classifier(out / "classifier")
    texts, labels = topic_texts(128, seed=2)
    export_artifact(args.classifier, eval_data=EvalSample.from_labelled(texts, labels, TOPICS))
    args.ner = build_tiny_ner(out / "ner")
    words, tags = ner_sentences(128, seed=2)
    export_artifact(args.ner, eval_data=EvalSample(source="generated", words=words, tags=tags))
    args.model_dir = None
    if args.rules is None:
        args.rules = out / "rules.yaml"
        args.rules.write_text(TINY_RULES, encoding="utf-8")


def check_models(args: argparse.Namespace) -> None:
    dirs = [args.model_dir] if args.model_dir else [args.classifier, args.ner]
    for d in dirs:
        if not Path(d).is_dir():
            raise ChaosError(
                f"model directory {d} not found: run `make demo` first (it trains "
                "models/classifier and models/ner), or pass --classifier/--ner or --model-dir"
            )


async def wait_ready(workers: list[Worker], timeout_s: float) -> None:
    """Until every worker has been given partitions, so the clock starts on a working group."""
    deadline = time.monotonic() + timeout_s
    while not all(w.assigned() for w in workers):
        for w in workers:
            code = w.exit_code()
            if code is not None:
                raise ChaosError(
                    f"worker {w.index} exited with {code} while starting; see {w.log_path}"
                )
        if time.monotonic() > deadline:
            console.print(
                f"[yellow]not every worker was assigned partitions in {timeout_s:.0f} s; "
                "going on[/]"
            )
            return
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace, work: Path) -> Figures:
    tag = uuid.uuid4().hex[:6]
    app_id = f"chaos-{tag}-router"
    topics = TopicSettings(
        email=f"chaos-{tag}.email",
        ticket=f"chaos-{tag}.ticket",
        article=f"chaos-{tag}.article",
        routed=f"chaos-{tag}.routed",
        dead_letter=f"chaos-{tag}.dead-letter",
        partitions=args.partitions,
    )
    inputs = list(
        sample_records(
            args.messages,
            malformed_ratio=args.malformed,
            seed=args.seed,
            id_prefix=f"chaos-{tag}",
            poison_share=args.poison_share,
        )
    )
    ids = {r.key for r in inputs}
    poison = Counter(r.damage for r in inputs if r.damage and r.damage in POISON_REASONS)
    malformed = sum(r.expected_reason is not None for r in inputs)
    console.print(
        f"{len(inputs):,} messages ({malformed:,} malformed, {sum(poison.values()):,} of them "
        f"poison), {args.workers} workers, {args.partitions} partitions; work dir {work}"
    )

    broker_port = free_port()
    with KafkaFaultProxy("127.0.0.1", broker_port) as proxy:
        embedded = EmbeddedBroker(
            EmbeddedBrokerSettings(
                port=broker_port, advertised_port=proxy.port, log_file=work / "broker.log"
            )
        )
        await asyncio.to_thread(embedded.start)
        broker = BrokerSettings(bootstrap_servers=embedded.bootstrap)
        env = worker_env(args, embedded.bootstrap, topics, app_id)
        workers: list[Worker] = []
        try:
            limits = worker_topic_limits(WorkerSettings(topics=topics))
            await ensure_topics(broker, topics.all_topics(), topics.partitions, configs=limits)
            for i in range(args.workers):
                (work / f"faust-{i}").mkdir()
                slot_env = {**env, "TEXTROUTE_WORKER_DATA_DIR": str(work / f"faust-{i}")}
                workers.append(Worker(i, slot_env, work / f"worker-{i}.log"))
                workers[-1].start()
            console.print(f"[dim]waiting for {args.workers} workers to join the group[/]")
            await wait_ready(workers, args.ready_timeout)
            return await run_chaos(
                args, broker, topics, inputs, ids, workers, proxy, app_id, poison, malformed
            )
        finally:
            for worker in workers:
                worker.kill()
            await asyncio.to_thread(embedded.stop)


async def run_chaos(
    args: argparse.Namespace,
    broker: BrokerSettings,
    topics: TopicSettings,
    inputs: list[SampleRecord],
    ids: set[str],
    workers: list[Worker],
    proxy: KafkaFaultProxy,
    app_id: str,
    poison: Counter[str],
    malformed: int,
) -> Figures:
    total = len(inputs)
    index = OutputIndex(topics.routed, ids)
    timed_out = False
    progress = Progress(
        TextColumn("[bold]routed"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    )
    began = time.monotonic()
    async with TopicFollower(broker, [topics.routed, topics.dead_letter]) as follower:
        sending = asyncio.create_task(
            send(broker, topics, inputs, rate=args.rate, chunk=args.chunk)
        )
        chaos = Chaos(args, workers, proxy, app_id, progress)
        with progress:
            bar = progress.add_task("routed", total=total, rate="")
            try:
                while True:
                    index.update(follower.records)
                    seen = len(index.seen)
                    rate = seen / max(time.monotonic() - began, 1e-9)
                    progress.update(bar, completed=seen, rate=f"{rate:,.0f}/s")
                    if sending.done() and sending.exception() is not None:
                        raise ChaosError(f"sending failed: {sending.exception()}")
                    if seen == total and sending.done():
                        break
                    if time.monotonic() - began > args.timeout:
                        timed_out = True
                        progress.console.print(f"[red]timed out after {args.timeout:.0f} s[/]")
                        break
                    chaos.tick(seen, total)
                    await asyncio.sleep(0.2)
            finally:
                chaos.release()
                if not sending.done():
                    sending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await sending
    ended = index.last_new or time.monotonic()
    console.print("[dim]stopping the workers (SIGTERM) and reading the outputs back[/]")
    starting = [not w.running() for w in workers]
    codes = await asyncio.gather(*(w.stop() for w in workers))
    records = await read_topics(broker, [topics.routed, topics.dead_letter], idle_s=2.0)
    out = tally_outputs(inputs, records, topics.routed)
    seconds = max(ended - began, 1e-9)
    return Figures(
        inputs=total,
        malformed=malformed,
        poison=dict(sorted(poison.items())),
        **out,
        kills=chaos.tally.kills,
        holds=chaos.tally.holds,
        held_s=round(chaos.tally.held_s, 2),
        held_requests=proxy.stats.held_requests,
        dropped_frames=proxy.stats.dropped_frames,
        worker_starts=sum(w.starts for w in workers),
        unplanned_exits=chaos.tally.unplanned_exits,
        final_exit_codes=list(codes),
        final_still_starting=starting,
        timed_out=timed_out,
        seconds=round(seconds, 2),
        inputs_per_s=round(out["distinct_with_output"] / seconds, 1),
        workers=len(workers),
        partitions=topics.partitions,
        settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        machine={
            "platform": platform.platform(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        },
        date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        actions=chaos.tally.actions,
    )


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    models = p.add_argument_group("models (what `make demo` trains, by default)")
    models.add_argument("--classifier", metavar="DIR", type=Path, default=Path("models/classifier"))
    models.add_argument("--ner", metavar="DIR", type=Path, default=Path("models/ner"))
    models.add_argument(
        "--model-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="a classify-and-tag artifact (instead of the two)",
    )
    models.add_argument(
        "--tiny-models",
        action="store_true",
        help="train tiny 2-layer BERTs (training.tiny, seconds) and route with them: the "
        "figures then measure the delivery path, not the model",
    )
    models.add_argument(
        "--rules",
        metavar="YAML",
        type=Path,
        default=None,
        help="routing rules (default: the packaged ones)",
    )
    load = p.add_argument_group("load")
    load.add_argument(
        "--messages",
        type=int,
        help=f"messages to send ({FULL['messages']:,}; smoke {SMOKE['messages']:,})",
    )
    load.add_argument("--malformed", type=float, default=0.05, help="share of malformed messages")
    load.add_argument(
        "--poison-share",
        type=float,
        default=0.2,
        help="share of the malformed ones that are poison kinds",
    )
    load.add_argument(
        "--rate", type=float, help="messages/s; 0: as fast as the producer goes (0; smoke 150)"
    )
    load.add_argument("--chunk", type=int, default=1000, help="messages per acknowledged chunk")
    load.add_argument("--workers", type=int, default=2)
    load.add_argument("--partitions", type=int, default=6)
    load.add_argument(
        "--batch-size", type=int, default=None, help="worker batch size (default: its own)"
    )
    chaos = p.add_argument_group("chaos (seeded; intervals and holds jittered by up to 50%)")
    chaos.add_argument("--seed", type=int, default=1, help="messages and chaos schedule")
    chaos.add_argument(
        "--kill-every", type=float, help="seconds between SIGKILLs, 0: none (20; smoke 8)"
    )
    chaos.add_argument(
        "--hold-every", type=float, help="seconds between produce holds, 0: none (15; smoke 6)"
    )
    chaos.add_argument("--hold-s", type=float, help="seconds each hold lasts (3; smoke 2)")
    run_opts = p.add_argument_group("run")
    run_opts.add_argument(
        "--timeout", type=float, help="give up after this many seconds (3600; smoke 300)"
    )
    run_opts.add_argument(
        "--ready-timeout", type=float, default=120.0, help="wait for the workers to join"
    )
    run_opts.add_argument(
        "--smoke", action="store_true", help="a small plumbing check with the models given"
    )
    run_opts.add_argument(
        "--keep", action="store_true", help="keep the work dir (worker and broker logs)"
    )
    run_opts.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    for name, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.messages < 1 or args.workers < 1 or args.partitions < 1 or args.chunk < 1:
        p.error("--messages, --workers, --partitions and --chunk must be at least 1")
    for name in ("malformed", "poison_share"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            p.error(f"--{name.replace('_', '-')} must be in [0, 1]")
    for name in ("classifier", "ner", "model_dir", "rules"):
        if getattr(args, name) is not None:
            setattr(args, name, getattr(args, name).resolve())
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    # The bench's own logs (broker start and stop) would break up the progress bar.
    configure_logging("WARNING", json=False)
    work = Path(tempfile.mkdtemp(prefix="textroute-chaos-"))
    if args.tiny_models:
        build_tiny_models(args, work / "models")
    try:
        check_models(args)
    except ChaosError as exc:
        print(f"chaos: {exc}", file=sys.stderr)  # one line, unwrapped
        return 2
    try:
        figures = asyncio.run(run(args, work))
    except (ChaosError, StreamError) as exc:
        print(f"chaos: {exc} (logs in {work})", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            console.print(f"work dir kept: {work}")
    report(figures)
    if args.json:
        args.json.write_text(json.dumps(asdict(figures), indent=2) + "\n", encoding="utf-8")
        console.print(f"figures written to {args.json}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if figures.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
