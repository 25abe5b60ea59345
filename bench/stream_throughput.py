"""Stream benchmark: the textroute worker vs a naive per-message consumer vs bare inference.

In one run, on the same messages, through the same broker, measures:

- worker: `python -m stream worker` (micro-batched ONNX int8 classifier + NER) draining a backlog
  (throughput, messages/s) and under a paced load (end-to-end latency p50/p99, from the
  producer's send to the routed event reaching a consumer);
- naive: an aiokafka loop calling `transformers.pipeline` (classification + NER) per message and
  producing each result with send_and_wait, measured the same way;
- bare: the inference layer alone (Predictor.classify + entities in batches of the worker's
  batch size) on the same texts, no Kafka: the ceiling the worker can approach, timed once
  before the worker's run and once after it, the ratio taking both;
- with --multitask DIR, the same worker and bare inference with ONE classify-and-tag artifact
  (TEXTROUTE_WORKER_MODEL_DIR; classify_and_tag, one encoder pass per message), against the
  same naive two-pipeline consumer.

With --load-sweep F1,F2,... each worker configuration is also run at those fractions of the
saturation rate it reached in this run's backlog drain (0.5, half saturation, is always among
them): offered vs achieved messages/s and end-to-end p50/p99 at each load, in a table, in the
--json output and, with --plot PATH, as a PNG of p50/p99 against offered load.

Targets on a 2-core machine: worker >= 5x naive and >= 80% of bare throughput; worker p99 <=
100 ms at half its saturation rate.

    python bench/stream_throughput.py --classifier models/classifier --ner models/ner
    python bench/stream_throughput.py ... --multitask models/multitask  # the one-encoder worker
    python bench/stream_throughput.py --smoke     # tiny trained models (a multitask one too)
    python bench/stream_throughput.py ... --write-results   # append to bench/RESULTS.md
    python bench/stream_throughput.py ... --load-sweep 0.1,0.25,0.5,0.75,0.9,1.0 --plot load.png
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from schemas.artifact import read_manifest
from schemas.messages import MESSAGE_TYPES, ArticleMessage, MessageKind
from stream.broker import EmbeddedBroker
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings, WorkerSettings
from stream.heap import freeze_startup_objects
from stream.inputs import to_outbound
from stream.samples import SampleRecord, sample_records
from stream.topics import TopicFollower, ensure_topics, producer

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ag_news" / "test.csv"
RESULTS = REPO / "bench" / "RESULTS.md"
console = Console()
Starter = Callable[[], "subprocess.Popen[bytes]"]
#: Worker p99 end-to-end latency target at half its saturation rate, ms.
HALF_SATURATION_P99_MS = 100.0
HALF = 0.5


@dataclass
class LoadPoint:
    """One step of a load sweep: a paced load at `fraction` of the saturation rate."""

    fraction: float
    offered_per_s: float
    achieved_per_s: float
    messages: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass
class SystemResult:
    system: str
    messages: int
    seconds: float
    messages_per_s: float
    latency_messages: int = 0
    latency_rate: float = 0.0
    p50_ms: float | None = None
    p99_ms: float | None = None
    sweep: list[LoadPoint] = field(default_factory=list)
    #: Cores each process used over the backlog drain, and the cores left idle (Linux).
    drain_cores: dict[str, float] = field(default_factory=dict)
    #: Bare inference: the rate of each timed pass, the one before the worker's run and the
    #: one after it; `messages_per_s` is their combined rate.
    passes_per_s: list[float] = field(default_factory=list)


# ---- inputs ---------------------------------------------------------------------------------


def agnews_records(path: Path, n: int, prefix: str) -> list[SampleRecord]:
    """AG News test articles as `article` messages (title as headline, description as body)."""
    records = []
    with path.open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i >= n:
                break
            message = ArticleMessage(
                id=f"{prefix}-{i:06d}",
                headline=" ".join(row["title"].split()),
                body=" ".join(row["description"].split()),
                source="AG News",
            )
            value = message.model_dump_json(by_alias=True).encode()
            records.append(SampleRecord(MessageKind.ARTICLE, message.id, value))
    return records


def make_records(
    source: str, n: int, prefix: str, seed: int, data: Path = DEFAULT_DATA
) -> list[SampleRecord]:
    if source == "agnews":
        return agnews_records(data, n, prefix)
    return list(sample_records(n, seed=seed, id_prefix=prefix))


def model_text(record: SampleRecord) -> str:
    return MESSAGE_TYPES[record.kind].model_validate_json(record.value).text_for_models()


# ---- the naive consumer (a subprocess: `python bench/stream_throughput.py naive ...`) ----


async def naive_consumer(args: argparse.Namespace) -> None:
    """Per message: parse, classify with a pipeline, tag with a pipeline, send_and_wait."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from training.artifact import artifact_pipeline

    classify = artifact_pipeline(args.classifier, device="cpu")
    tag = artifact_pipeline(args.ner, device="cpu", aggregation_strategy="simple")
    # The same token limits as the worker: truncate to classify, windows of max_length to tag.
    ner_length = read_manifest(args.ner, verify=False).max_length
    assert classify.tokenizer is not None and tag.tokenizer is not None
    classify.tokenizer.model_max_length = read_manifest(args.classifier, verify=False).max_length
    tag.tokenizer.model_max_length = ner_length
    topics = TopicSettings.model_validate_json(args.topics)
    consumer = AIOKafkaConsumer(
        *topics.inbound(),
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        # The worker's fetch wait (WorkerSettings.fetch_max_wait_ms), so tansu treats both alike.
        fetch_max_wait_ms=WorkerSettings.model_fields["fetch_max_wait_ms"].default,
    )
    out = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all")
    await consumer.start()
    await out.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            for tp, messages in batch.items():
                kind = topics.inbound()[tp.topic]
                for msg in messages:
                    text = (
                        MESSAGE_TYPES[kind].model_validate_json(msg.value or b"").text_for_models()
                    )
                    label = classify(text, truncation=True)[0]
                    entities = tag(text, stride=ner_length // 4)
                    result = {
                        "id": msg.key.decode() if msg.key else None,
                        "category": label["label"],
                        "confidence": float(label["score"]),
                        "entities": [
                            {"type": e["entity_group"], "start": e["start"], "end": e["end"]}
                            for e in entities
                        ],
                    }
                    await out.send_and_wait(topics.routed, json.dumps(result).encode(), key=msg.key)
    finally:
        await consumer.stop()
        await out.stop()


# ---- measuring a running system through Kafka --------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _idle_seconds() -> float:
    """CPU seconds the whole machine has spent idle or waiting for I/O, all cores."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[4]) + int(fields[5])) / os.sysconf("SC_CLK_TCK")


class CpuSplit:
    """Cores each watched process used, and the machine's idle cores, between `start` and
    `stop`: where the drain's CPU went (the system under test, the broker, this process)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self._pids = {name: pid for name, pid in pids.items() if pid is not None}
        self._at: dict[str, float] = {}
        self._began = 0.0

    def _sample(self) -> dict[str, float] | None:
        try:
            used = {name: _cpu_seconds(pid) for name, pid in self._pids.items()}
            return {**used, "idle": _idle_seconds()}
        except (OSError, ValueError, IndexError):
            return None  # not Linux, or a process already gone: no split

    def start(self) -> None:
        self._at = self._sample() or {}
        self._began = time.perf_counter()

    def stop(self) -> dict[str, float]:
        now = self._sample()
        seconds = time.perf_counter() - self._began
        if not now or not self._at or seconds <= 0:
            return {}
        return {name: round((now[name] - self._at[name]) / seconds, 3) for name in now}


class Arrivals(TopicFollower):
    """Follows an output topic and notes when each key first arrives."""

    def __init__(self, broker: BrokerSettings, topic: str) -> None:
        # A short fetch wait, so the measuring consumer adds next to nothing to the latency.
        super().__init__(broker, [topic], fetch_max_wait_ms=20)
        self._seen: dict[str, float] = {}
        self._scanned = 0

    @property
    def first_seen(self) -> dict[str, float]:
        # Only the records that came in since the last look: a full rescan every poll cost the
        # measuring process 0.6 of a core at 3,000 messages, taken from the system under test.
        records, arrived = self.records, self.arrived
        for i in range(self._scanned, min(len(records), len(arrived))):
            self._seen.setdefault((records[i].key or b"").decode(), arrived[i])
            self._scanned = i + 1
        return self._seen

    async def wait_for(
        self, keys: Sequence[str], proc: subprocess.Popen[bytes], timeout: float
    ) -> float:
        """Time when the last of `keys` arrived; fails if the system dies or is too slow."""
        deadline = time.perf_counter() + timeout
        pending = set(keys)
        while True:
            seen = self.first_seen
            pending = {k for k in pending if k not in seen}
            if not pending:
                return max(seen[k] for k in keys)
            if proc.poll() is not None:
                raise RuntimeError(f"the system under test exited with {proc.returncode}")
            if time.perf_counter() > deadline:
                done = len(keys) - len(pending)
                raise TimeoutError(f"only {done} of {len(keys)} outputs after {timeout:.0f} s")
            await asyncio.sleep(0.02)


@dataclass
class PacedLoad:
    """What a paced load measured: end-to-end latencies (ms, sorted) and the achieved rate."""

    latencies_ms: list[float]
    achieved_per_s: float

    @property
    def p50_ms(self) -> float | None:
        return statistics.median(self.latencies_ms) if self.latencies_ms else None

    @property
    def p99_ms(self) -> float | None:
        if len(self.latencies_ms) < 2:
            return None
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[98]


async def paced_load(
    prod: AIOKafkaProducer,
    arrivals: Arrivals,
    proc: subprocess.Popen[bytes],
    topics: TopicSettings,
    records: list[SampleRecord],
    rate: float,
    timeout: float,
) -> PacedLoad:
    """Send `records` at `rate` messages/s and wait for every output: each one's latency from
    its send to its routed event arriving, and messages/s from the first send to the last
    arrival (below `rate` when the system cannot keep up)."""
    sent_at: dict[str, float] = {}
    interval = 1.0 / rate
    next_send = time.perf_counter()
    for r, out in zip(records, to_outbound(records, topics), strict=True):
        await asyncio.sleep(max(0.0, next_send - time.perf_counter()))
        sent_at[r.key] = time.perf_counter()
        await prod.send(out.topic, out.value, key=out.key)
        next_send += interval
    await prod.flush()
    last = await arrivals.wait_for(list(sent_at), proc, timeout)
    latencies = sorted((arrivals.first_seen[k] - t) * 1000 for k, t in sent_at.items())
    span = last - min(sent_at.values()) if sent_at else 0.0
    return PacedLoad(latencies, len(sent_at) / span if span > 0 else 0.0)


#: (step, offered messages/s) -> the step's messages, with keys no other step uses.
SweepRecords = Callable[[int, float], list[SampleRecord]]


async def measure_system(
    name: str,
    start: Starter,
    broker: BrokerSettings,
    topics: TopicSettings,
    records: list[SampleRecord],
    latency_records: list[SampleRecord],
    rate: float,
    timeout: float,
    *,
    sweep: Sequence[float] = (),
    sweep_records: SweepRecords | None = None,
    broker_pid: int | None = None,
) -> SystemResult:
    """Warm up, drain a backlog (throughput), then a paced load (latency); with `sweep`, then
    a paced load at each of those fractions of the drain's rate (its saturation rate), of the
    messages `sweep_records` gives. Each load waits for its last output, so none starts on
    the previous one's backlog."""
    await ensure_topics(broker, topics.all_topics(), topics.partitions)
    # The load generator's own full collections would count as the system's latency.
    freeze_startup_objects()
    proc = start()
    points: list[LoadPoint] = []
    try:
        async with Arrivals(broker, topics.routed) as arrivals, producer(broker) as prod:
            warm = list(sample_records(12, seed=99, id_prefix=f"warm-{name}"))
            for o in to_outbound(warm, topics):
                await prod.send(o.topic, o.value, key=o.key)
            await arrivals.wait_for([w.key for w in warm], proc, timeout=max(timeout, 180))
            console.print(f"[dim]{name}: warmed up, draining {len(records)} messages[/]")

            split = CpuSplit({name: proc.pid, "broker": broker_pid, "load": os.getpid()})
            split.start()
            began = time.perf_counter()
            futures = [
                await prod.send(o.topic, o.value, key=o.key) for o in to_outbound(records, topics)
            ]
            await asyncio.gather(*futures)
            end = await arrivals.wait_for([r.key for r in records], proc, timeout)
            seconds = end - began
            drain_cores = split.stop()

            console.print(f"[dim]{name}: paced load of {len(latency_records)} at {rate:g}/s[/]")
            paced = await paced_load(prod, arrivals, proc, topics, latency_records, rate, timeout)
            # The drain's rate is the saturation rate the sweep's loads are fractions of.
            saturation = len(records) / seconds
            for step, fraction in enumerate(sweep):
                assert sweep_records is not None, "a sweep needs sweep_records"
                offered = fraction * saturation
                batch = sweep_records(step, offered)
                console.print(
                    f"[dim]{name}: load sweep, {len(batch)} at {offered:.1f}/s "
                    f"({fraction:g} of saturation)[/]"
                )
                got = await paced_load(prod, arrivals, proc, topics, batch, offered, timeout)
                achieved, p50, p99 = got.achieved_per_s, got.p50_ms, got.p99_ms
                points.append(LoadPoint(fraction, offered, achieved, len(batch), p50, p99))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return SystemResult(
        system=name,
        messages=len(records),
        seconds=seconds,
        messages_per_s=len(records) / seconds,
        latency_messages=len(paced.latencies_ms),
        latency_rate=rate,
        p50_ms=paced.p50_ms,
        p99_ms=paced.p99_ms,
        sweep=points,
        drain_cores=drain_cores,
    )


def bare_inference(
    args: argparse.Namespace, texts: list[str], *, multitask: bool = False
) -> SystemResult:
    """The inference layer alone, batched like the worker, on the same texts: the classifier
    and the NER model, or with `multitask` the one classify-and-tag model, one call a batch."""
    from inference import MultiTaskPredictor, load_predictor

    if multitask:
        joint = load_predictor(args.multitask)
        assert isinstance(joint, MultiTaskPredictor), f"{args.multitask} is not classify-and-tag"
        calls: list[Callable[[list[str]], object]] = [joint.classify_and_tag]
    else:
        classifier, ner = load_predictor(args.classifier), load_predictor(args.ner)
        calls = [classifier.classify, ner.entities]
    warm = texts[: args.batch_size]
    for call in calls:
        call(warm)
    name = "bare inference (multitask)" if multitask else "bare inference"
    # The same split as a worker's drain: this process is the inference, the rest is idle.
    split = CpuSplit({name: os.getpid()})
    split.start()
    start = time.perf_counter()
    for i in range(0, len(texts), args.batch_size):
        chunk = texts[i : i + args.batch_size]
        for call in calls:
            call(chunk)
    seconds = time.perf_counter() - start
    cores = split.stop()
    return SystemResult(name, len(texts), seconds, len(texts) / seconds, drain_cores=cores)


def around(before: SystemResult, after: SystemResult) -> SystemResult:
    """Two passes of bare inference, one on each side of a worker's run, as one result: the
    ratio to the worker then holds whichever way the machine's speed drifts meanwhile (on a
    shared VM one pass alone varies by a tenth between runs)."""
    seconds = before.seconds + after.seconds
    cores = {
        name: round(
            (before.drain_cores[name] * before.seconds + after.drain_cores[name] * after.seconds)
            / seconds,
            3,
        )
        for name in before.drain_cores.keys() & after.drain_cores.keys()
    }
    messages = before.messages + after.messages
    return SystemResult(
        before.system,
        messages,
        seconds,
        messages / seconds,
        drain_cores=cores,
        passes_per_s=[before.messages_per_s, after.messages_per_s],
    )


def passes_lines(results: Sequence[SystemResult]) -> list[str]:
    """Each bare inference's passes on either side of its worker's run."""
    return [
        f"{r.system}: {r.passes_per_s[0]:.1f} msg/s before the worker's run, "
        f"{r.passes_per_s[1]:.1f} after; the ratios take both"
        for r in results
        if len(r.passes_per_s) == 2
    ]


# ---- orchestration --------------------------------------------------------------------------


def _topics(tag: str, system: str) -> TopicSettings:
    p = f"bench-{tag}-{system}"
    return TopicSettings(
        email=f"{p}.email",
        ticket=f"{p}.ticket",
        article=f"{p}.article",
        routed=f"{p}.routed",
        dead_letter=f"{p}.dead-letter",
        partitions=3,
    )


def _worker_factory(
    args: argparse.Namespace,
    bootstrap: str,
    topics: TopicSettings,
    logs: Path,
    tag: str,
    *,
    multitask: bool = False,
) -> Starter:
    env = {
        **os.environ,
        **topics.as_env(),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": bootstrap,
        "TEXTROUTE_WORKER_APP_ID": f"bench-{tag}-worker{'-mt' if multitask else ''}",
        "TEXTROUTE_WORKER_CLASSIFIER_DIR": args.classifier,
        "TEXTROUTE_WORKER_NER_DIR": args.ner,
        "TEXTROUTE_WORKER_BATCH_SIZE": str(args.batch_size),
        "TEXTROUTE_WORKER_BATCH_WAIT_S": str(args.batch_wait),
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        "TEXTROUTE_WORKER_LOG_LEVEL": args.worker_log_level,
        "TEXTROUTE_WORKER_DATA_DIR": str(logs / "faust"),
    }
    if args.rules:
        env["TEXTROUTE_WORKER_RULES_PATH"] = args.rules
    if multitask:
        # One artifact in both roles: the worker runs classify_and_tag once per batch.
        env["TEXTROUTE_WORKER_MODEL_DIR"] = args.multitask

    def start() -> subprocess.Popen[bytes]:
        with (logs / "worker.log").open("ab") as log:
            cmd = [sys.executable, "-m", "stream", "worker"]
            return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    return start


def _naive_factory(
    args: argparse.Namespace, bootstrap: str, topics: TopicSettings, logs: Path, tag: str
) -> Starter:
    def start() -> subprocess.Popen[bytes]:
        cmd = [
            sys.executable, __file__, "naive", "--bootstrap", bootstrap,
            "--topics", topics.model_dump_json(), "--group", f"bench-{tag}-naive",
            "--classifier", args.classifier, "--ner", args.ner,
        ]  # fmt: skip
        with (logs / "naive.log").open("ab") as log:
            return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    return start


def smoke_models(out: Path) -> tuple[str, str, str, str]:
    """Tiny trained classifier, NER and classify-and-tag artifacts exported to int8, plus rules
    for their labels."""
    from training.export import EvalSample, export_artifact
    from training.tiny import (
        TOPICS,
        build_tiny_classifier,
        build_tiny_multitask,
        build_tiny_ner,
        ner_sentences,
        topic_texts,
    )

    classifier = build_tiny_classifier(out / "classifier", steps=30)
    texts, labels = topic_texts(64, seed=2)
    export_artifact(classifier, eval_data=EvalSample.from_labelled(texts, labels, TOPICS))
    ner = build_tiny_ner(out / "ner", steps=30)
    words, tags = ner_sentences(64, seed=2)
    export_artifact(ner, eval_data=EvalSample(source="generated", words=words, tags=tags))
    multitask = build_tiny_multitask(out / "multitask")
    export_artifact(multitask)
    rules = out / "rules.yaml"
    rules.write_text("default_queue: triage\n", encoding="utf-8")
    return str(classifier), str(ner), str(multitask), str(rules)


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _result_cells(r: SystemResult) -> list[str]:
    """A result's row, as the terminal table and the markdown both show it."""
    load = f"{r.latency_messages} @ {r.latency_rate:g}/s" if r.latency_messages else "-"
    return [
        r.system,
        str(r.messages),
        f"{r.seconds:.2f}",
        f"{r.messages_per_s:.1f}",
        load,
        _ms(r.p50_ms),
        _ms(r.p99_ms),
    ]


def cpu_ms_per_message(result: SystemResult) -> dict[str, float]:
    """Milliseconds of CPU a message over the drain (bare: the timed pass), by process and
    for all of them together: the messages-per-core view of the split."""
    rate = result.messages_per_s
    used = {name: cores for name, cores in result.drain_cores.items() if name != "idle"}
    if rate <= 0 or not used:
        return {}
    per = {name: round(cores / rate * 1000, 3) for name, cores in used.items()}
    return {**per, "all": round(sum(used.values()) / rate * 1000, 3)}


def cpu_lines(results: Sequence[SystemResult]) -> list[str]:
    """Per system with a CPU split: the cores each process used over its backlog drain (bare
    inference: its timed pass), and the CPU a message that makes."""
    lines = []
    for r in results:
        if r.drain_cores:
            used = ", ".join(f"{name} {cores:.2f}" for name, cores in r.drain_cores.items())
            per = cpu_ms_per_message(r)
            cost = f"; {per['all']:.2f} ms of CPU a message" if per else ""
            if r.system in per and len(per) > 2:  # the system's own share, beside others'
                cost += f" ({per[r.system]:.2f} in {r.system})"
            lines.append(f"{r.system}, cores over the drain: {used} (of {os.cpu_count()}){cost}")
    return lines


def table(results: Sequence[SystemResult]) -> Table:
    t = Table(title="textroute stream benchmark")
    for col in ("system", "messages", "seconds", "msg/s", "latency load", "p50 ms", "p99 ms"):
        t.add_column(col, justify="left" if col == "system" else "right")
    for r in results:
        t.add_row(*_result_cells(r))
    return t


def verdict(results: dict[str, SystemResult]) -> dict[str, float]:
    out: dict[str, float] = {}
    worker = results["worker"].messages_per_s if "worker" in results else None
    if worker is not None:
        out["bare_fraction"] = worker / results["bare inference"].messages_per_s
        if "naive" in results:
            out["speedup_vs_naive"] = worker / results["naive"].messages_per_s
    if "worker (multitask)" in results:
        joint = results["worker (multitask)"].messages_per_s
        out["multitask_bare_fraction"] = (
            joint / results["bare inference (multitask)"].messages_per_s
        )
        if worker is not None:
            out["multitask_vs_worker"] = joint / worker
        if "naive" in results:
            out["multitask_speedup_vs_naive"] = joint / results["naive"].messages_per_s
    return out


def half_saturation(result: SystemResult) -> LoadPoint | None:
    return next((p for p in result.sweep if p.fraction == HALF), None)


def sweep_summary(results: Sequence[SystemResult]) -> dict[str, dict[str, object]]:
    """Per swept system: its saturation rate, the half-saturation point and whether its p99
    meets the target there."""
    out: dict[str, dict[str, object]] = {}
    for r in results:
        half = half_saturation(r)
        p99 = half.p99_ms if half is not None else None
        met = p99 is not None and p99 <= HALF_SATURATION_P99_MS
        verdict = (
            f"p99 {p99:.1f} ms at half saturation ({half.offered_per_s:.1f} msg/s): "
            f"{'meets' if met else 'misses'} the <= {HALF_SATURATION_P99_MS:g} ms target"
            if half is not None and p99 is not None
            else "no p99 at half saturation (too few messages)"
        )
        out[r.system] = {
            "saturation_per_s": r.messages_per_s,
            "half_saturation": asdict(half) if half is not None else None,
            "target_p99_ms": HALF_SATURATION_P99_MS,
            "meets_target": met,
            "verdict": verdict,
        }
    return out


def sweep_table(results: Sequence[SystemResult]) -> Table:
    t = Table(title="worker latency against offered load (share of its saturation rate)")
    cols = ("system", "load", "offered/s", "achieved/s", "msgs", "p50 ms", "p99 ms", "target")
    for col in cols:
        t.add_column(col, justify="left" if col in ("system", "load", "target") else "right")
    for r in results:
        for p in r.sweep:
            half = p.fraction == HALF
            met = p.p99_ms is not None and p.p99_ms <= HALF_SATURATION_P99_MS
            t.add_row(
                r.system,
                f"{p.fraction:.0%}" + (" (half)" if half else ""),
                f"{p.offered_per_s:.1f}",
                f"{p.achieved_per_s:.1f}",
                str(p.messages),
                _ms(p.p50_ms),
                _ms(p.p99_ms),
                ("met" if met else "MISSED") if half else "",
            )
    t.caption = f"target: p99 <= {HALF_SATURATION_P99_MS:g} ms at half saturation"
    return t


def plot_sweep(path: str, results: Sequence[SystemResult], args: argparse.Namespace) -> Path:
    """p50/p99 against offered load, one colour per worker configuration."""
    from plots import LoadCurve, latency_vs_load

    curves = {}
    for r in results:
        points = [p for p in r.sweep if p.p50_ms is not None and p.p99_ms is not None]
        half = half_saturation(r)
        curves[f"{r.system} (saturation {r.messages_per_s:.0f}/s)"] = LoadCurve(
            offered=[p.offered_per_s for p in points],
            p50_ms=[p.p50_ms or 0.0 for p in points],
            p99_ms=[p.p99_ms or 0.0 for p in points],
            half_saturation=half.offered_per_s if half is not None else None,
        )
    caption = (
        f"{os.cpu_count()} CPUs; texts: {args.texts}; worker batch {args.batch_size}, wait "
        f"{args.batch_wait} s; {'smoke (tiny models)' if args.smoke else args.classifier}"
    )
    return latency_vs_load(path, curves, target_ms=HALF_SATURATION_P99_MS, caption=caption)


def markdown(
    results: Sequence[SystemResult], ratios: dict[str, float], args: argparse.Namespace
) -> str:
    cmd = " ".join(shlex.quote(a) for a in sys.argv)
    lines = [
        f"## Stream benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `{cmd}`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs; broker: "
        f"{'embedded tansu' if not args.bootstrap else args.bootstrap}; texts: {args.texts}; "
        f"worker batch {args.batch_size}, wait {args.batch_wait} s.",
        "",
        "| system | messages | seconds | msg/s | latency load | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append("| " + " | ".join(_result_cells(r)) + " |")
    lines.append("")
    lines += [f"{line}." for line in cpu_lines(results) + passes_lines(results)]
    if "bare_fraction" in ratios:
        lines.append(
            f"Worker throughput: {ratios['bare_fraction']:.0%} of bare inference (target >= 80%)"
            + (
                f"; {ratios['speedup_vs_naive']:.1f}x the naive consumer (target >= 5x)."
                if "speedup_vs_naive" in ratios
                else "."
            )
        )
    if "multitask_bare_fraction" in ratios:
        versus = (
            f"{ratios['multitask_vs_worker']:.2f}x the two-model worker, "
            if "multitask_vs_worker" in ratios
            else ""
        )
        lines.append("")
        lines.append(
            f"One-encoder (classify-and-tag) worker: {versus}"
            f"{ratios['multitask_bare_fraction']:.0%} of its bare inference"
            + (
                f", {ratios['multitask_speedup_vs_naive']:.1f}x the naive consumer."
                if "multitask_speedup_vs_naive" in ratios
                else "."
            )
        )
    swept = [r for r in results if r.sweep]
    if swept:
        lines += [
            "",
            "| system | load | offered msg/s | achieved msg/s | messages | p50 ms | p99 ms |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in swept:
            for p in r.sweep:
                lines.append(
                    f"| {r.system} | {p.fraction:.0%} | {p.offered_per_s:.1f} | "
                    f"{p.achieved_per_s:.1f} | {p.messages} | {_ms(p.p50_ms)} | {_ms(p.p99_ms)} |"
                )
        lines.append("")
        for name, half in sweep_summary(swept).items():
            lines.append(f"{name}: {half['verdict']}.")
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> int:
    tag = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="textroute-bench-"))
    if args.smoke:
        args.classifier, args.ner, args.multitask, args.rules = smoke_models(work / "models")
    if args.texts == "agnews" and not args.data.is_file():
        console.print(f"[yellow]{args.data} not found; using generated sample messages[/]")
        args.texts = "samples"
    records = make_records(args.texts, args.messages, f"w{tag}", seed=1, data=args.data)
    paced = make_records(
        args.texts, args.messages + args.latency_messages, f"wl{tag}", 2, data=args.data
    )
    paced = paced[args.messages :] if args.texts == "agnews" else paced[: args.latency_messages]
    if len(records) < args.messages or len(paced) < args.latency_messages:
        # The backlog and the paced load must not share texts, and a short run would be
        # reported as if it were the one asked for.
        console.print(
            f"[red]error:[/] {args.data} has {len(records) + len(paced)} texts, fewer than "
            f"--messages {args.messages} + --latency-messages {args.latency_messages}; "
            "ask for fewer"
        )
        shutil.rmtree(work, ignore_errors=True)
        return 2
    embedded = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        embedded = EmbeddedBroker(EmbeddedBrokerSettings(port=0, log_file=work / "broker.log"))
        bootstrap = embedded.start().bootstrap
    broker = BrokerSettings(bootstrap_servers=bootstrap)
    broker_pid = embedded.pid if embedded is not None else None
    results: dict[str, SystemResult] = {}
    try:
        texts = [model_text(r) for r in records]
        console.print(f"{len(records)} messages ({args.texts}); work dir {work}")

        def sweep_records(step: int, offered: float) -> list[SampleRecord]:
            n = max(args.sweep_min_messages, round(offered * args.sweep_seconds))
            return make_records(args.texts, n, f"s{step}{tag}", 3 + step, data=args.data)

        # Bare inference runs before and after each worker, so that the ratio between them
        # spans the same stretch of the machine's time.
        if not args.only_multitask:
            bare = bare_inference(args, texts)
            topics = _topics(tag, "worker")
            results["worker"] = await measure_system(
                "worker", _worker_factory(args, bootstrap, topics, work, tag), broker, topics,
                records, paced, args.latency_rate, args.timeout,
                sweep=args.load_sweep, sweep_records=sweep_records, broker_pid=broker_pid,
            )  # fmt: skip
            results["bare inference"] = around(bare, bare_inference(args, texts))
        if args.multitask:
            name = "worker (multitask)"
            bare = bare_inference(args, texts, multitask=True)
            topics = _topics(tag, "worker-mt")
            results[name] = await measure_system(
                name, _worker_factory(args, bootstrap, topics, work, tag, multitask=True),
                broker, topics, records, paced, args.latency_rate, args.timeout,
                sweep=args.load_sweep, sweep_records=sweep_records, broker_pid=broker_pid,
            )  # fmt: skip
            after = bare_inference(args, texts, multitask=True)
            results["bare inference (multitask)"] = around(bare, after)
        if not args.skip_naive:
            n = min(args.naive_messages, len(records))
            topics = _topics(tag, "naive")
            results["naive"] = await measure_system(
                "naive", _naive_factory(args, bootstrap, topics, work, tag), broker, topics,
                records[:n], paced[: args.naive_latency_messages], args.naive_latency_rate,
                args.timeout, broker_pid=broker_pid,
            )  # fmt: skip
    finally:
        if embedded is not None:
            embedded.stop()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    order = (
        "worker",
        "worker (multitask)",
        "naive",
        "bare inference",
        "bare inference (multitask)",
    )
    ordered = [results[k] for k in order if k in results]
    ratios = verdict(results)
    console.print(table(ordered))
    for line in cpu_lines(ordered) + passes_lines(ordered):
        console.print(line)
    console.print(ratios)
    swept = [r for r in ordered if r.sweep]
    summary = sweep_summary(swept)
    if swept:
        console.print(sweep_table(swept))
        for name, half in summary.items():
            console.print(f"{name}: {half['verdict']}")
    if args.plot and swept:
        console.print(f"plot: {plot_sweep(args.plot, swept, args)}")
    if args.json:
        payload: dict[str, object] = {
            "results": [
                {**asdict(r), "cpu_ms_per_message": cpu_ms_per_message(r)} for r in ordered
            ],
            **ratios,
        }
        if swept:
            payload["load_sweep"] = summary
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if args.write_results:
        with RESULTS.open("a", encoding="utf-8") as fh:
            fh.write("\n" + markdown(ordered, ratios, args))
        console.print(f"appended to {RESULTS}")
    return 0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command")
    naive = sub.add_parser("naive", help="(internal) run the naive consumer")
    naive.add_argument("--bootstrap", required=True)
    naive.add_argument("--topics", required=True, help="TopicSettings as JSON")
    naive.add_argument("--group", required=True)
    naive.add_argument("--classifier", required=True)
    naive.add_argument("--ner", required=True)
    p.add_argument("--classifier", default="models/classifier")
    p.add_argument("--ner", default="models/ner")
    p.add_argument(
        "--multitask",
        default=None,
        help="a classify-and-tag artifact: also measure the worker and bare inference with it",
    )
    p.add_argument("--rules", default=None, help="routing rules for the worker")
    p.add_argument("--bootstrap", default=None, help="Kafka to use (default: embedded tansu)")
    p.add_argument("--texts", choices=["agnews", "samples"], default="agnews")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AG News CSV")
    p.add_argument("--messages", type=int, default=2000, help="backlog drained by the worker")
    p.add_argument("--naive-messages", type=int, default=300, help="backlog for the naive one")
    p.add_argument("--latency-messages", type=int, default=300)
    p.add_argument("--latency-rate", type=float, default=20.0, help="paced load, messages/s")
    p.add_argument("--naive-latency-messages", type=int, default=100)
    p.add_argument("--naive-latency-rate", type=float, default=5.0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--batch-wait",
        type=float,
        default=WorkerSettings.model_fields["batch_wait_s"].default,
        help="the worker's default",
    )
    p.add_argument("--timeout", type=float, default=600.0, help="max seconds per phase")
    p.add_argument("--skip-naive", action="store_true")
    p.add_argument(
        "--only-multitask",
        action="store_true",
        help="measure only the --multitask worker (the naive consumer still runs --classifier "
        "and --ner, the two models one classify-and-tag pass replaces)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny random models (plumbing check)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, smoke models)")
    p.add_argument(
        "--worker-log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="the worker's log level; DEBUG logs each batch's size and its process and produce "
        "times (worker.log in the work dir: add --keep)",
    )
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--write-results", action="store_true", help=f"append to {RESULTS}")
    p.add_argument(
        "--load-sweep",
        type=fractions,
        default=(),
        metavar="F1,F2,...",
        help="also pace each worker at these fractions of its drain (saturation) rate, e.g.\n"
        "0.1,0.25,0.5,0.75,0.9,1.0; 0.5 (half saturation) is always added",
    )
    p.add_argument(
        "--sweep-seconds",
        type=float,
        default=None,
        help="length of each sweep step, seconds of its load (default 10; --smoke: 2)",
    )
    p.add_argument(
        "--sweep-min-messages",
        type=int,
        default=None,
        help="fewest messages a sweep step sends (default 100; --smoke: 20)",
    )
    p.add_argument(
        "--plot",
        default=None,
        help="write a PNG of the sweep's p50/p99 against offered load here\n"
        "(a bare name: under bench/plots/)",
    )
    args = p.parse_args(argv)
    if args.plot and not args.load_sweep:
        p.error("--plot draws the load sweep: give --load-sweep too")
    if args.sweep_seconds is None:
        args.sweep_seconds = 2.0 if args.smoke else 10.0
    if args.sweep_min_messages is None:
        args.sweep_min_messages = 20 if args.smoke else 100
    return args


def fractions(value: str) -> tuple[float, ...]:
    """`0.1,0.5,1` as sorted distinct fractions of saturation, half saturation always among them."""
    try:
        got = {float(v) for v in value.split(",") if v.strip()}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {value!r}") from exc
    if not got or any(not 0 < f <= 2 for f in got):
        raise argparse.ArgumentTypeError(f"fractions of saturation must be in (0, 2]: {value!r}")
    return tuple(sorted(got | {HALF}))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "naive":
        asyncio.run(naive_consumer(args))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
