"""Memory benchmark: resident memory of the worker and the API process per model set.

Starts each as a real subprocess, the way a user runs it: the worker as `python -m stream
worker` (TEXTROUTE_WORKER_* settings, on the embedded tansu broker unless --bootstrap), the API
as `python -m stream.api` (what `textroute serve` runs; TEXTROUTE_API_* settings, loopback, a
free port). For each model set it reads /proc/PID/status of that process twice:

- ready: the models are loaded and one message (worker) or request (API) has gone through;
- after N: N more messages (--messages) or single-text /v1/route requests (--requests, sent by
  --concurrency clients) have gone through, and --settle seconds have passed;

and reports VmRSS (resident now), VmHWM (the peak resident size since the process started,
model loading included) and, when psutil is installed, USS (memory only this process holds).

ONNX sessions: the ONNX Runtime sessions (graphs) each process holds, read from its Prometheus
/metrics (the worker's on TEXTROUTE_WORKER_METRICS_PORT, the API's /metrics) from the first
metric whose name speaks of ONNX sessions or graphs: the worker's
textroute_onnx_graphs_loaded (stream/metrics.py). A process without such a metric shows "-"
there, and a note names it; the column is left out when no process has one.

Model sets (each process is started once per set it can serve):

- classifier: --classifier alone (no NER);
- classifier+ner: --classifier and --ner, two encoders;
- multitask: one classify-and-tag artifact (--multitask) in both roles (worker:
  TEXTROUTE_WORKER_MODEL_DIR; API: the same directory as classifier and NER);
- pipelines: a pipelines YAML (--pipelines; the worker only: the API serves no pipelines file).

    python bench/memory.py --classifier models/classifier --ner models/ner \\
        --multitask models/multitask --pipelines deploy/pipelines.yaml --json mem.json
    python bench/memory.py --smoke      # tiny trained models, all four sets, about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table
from stream_throughput import (
    DEFAULT_DATA,
    Arrivals,
    _topics,
    make_records,
    model_text,
    smoke_models,
)

from stream.broker import EmbeddedBroker
from stream.config import BrokerSettings, EmbeddedBrokerSettings
from stream.inputs import to_outbound
from stream.topics import ensure_topics, producer

REPO = Path(__file__).resolve().parents[1]
console = Console(width=120)
SETS = ("classifier", "classifier+ner", "multitask", "pipelines")
PROCESSES = ("worker", "api")
#: A metric family naming the ONNX Runtime sessions or graphs a process holds (the worker's
#: textroute_onnx_graphs_loaded): matched by name, so a renamed or added one is read too.
SESSION_METRIC = re.compile(r"onnx\w*(session|graph)|(session|graph)\w*onnx", re.IGNORECASE)


@dataclass(frozen=True)
class ModelSet:
    """What one process serves: a classifier (and NER model), one multitask artifact, or a
    pipelines file."""

    name: str
    classifier: Path | None = None
    ner: Path | None = None
    multitask: Path | None = None
    pipelines: Path | None = None


@dataclass
class MemorySample:
    process: str
    model_set: str
    phase: str
    items: int
    rss_mb: float
    peak_mb: float
    uss_mb: float | None
    onnx_sessions: float | None
    pid: int


# ---- reading a process from outside ----------------------------------------------------------


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of `pid`, in MB (MiB), from /proc/PID/status."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024  # kB
    return out


def uss_mb(pid: int) -> float | None:
    """Unique set size (pages no other process shares), MB, when psutil is installed."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        return float(psutil.Process(pid).memory_full_info().uss) / 2**20
    except (psutil.Error, OSError):
        return None


def onnx_sessions(metrics_url: str) -> tuple[float | None, str | None]:
    """(sessions, metric name) from a process's /metrics; (None, None) when no metric names
    ONNX sessions or graphs or the endpoint does not answer."""
    try:
        return session_count(httpx.get(metrics_url, timeout=10).text)
    except httpx.HTTPError:
        return None, None


def session_count(metrics_text: str) -> tuple[float | None, str | None]:
    """The sum of the first metric family in a Prometheus text exposition whose name speaks of
    ONNX sessions or graphs (over its labels: per model, say), and its name."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        if not SESSION_METRIC.search(family.name):
            continue
        values = [s.value for s in family.samples if not s.name.endswith("_created")]
        return float(sum(values)), family.name
    return None, None


def sample(
    process: str, model_set: str, phase: str, items: int, pid: int, metrics_url: str
) -> tuple[MemorySample, str | None]:
    status = proc_status(pid)
    sessions, metric = onnx_sessions(metrics_url)
    return (
        MemorySample(
            process=process,
            model_set=model_set,
            phase=phase,
            items=items,
            rss_mb=status["VmRSS"],
            peak_mb=status["VmHWM"],
            uss_mb=uss_mb(pid),
            onnx_sessions=sessions,
            pid=pid,
        ),
        metric,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(module: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """`python -m MODULE...` from the repository root, its output appended to `log_path`."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", *module],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def clean_env() -> dict[str, str]:
    """This environment without textroute settings of the process kinds measured here, so
    only what the benchmark sets applies; inference settings (threads, ...) pass through."""
    drop = ("TEXTROUTE_WORKER_", "TEXTROUTE_API_", "TEXTROUTE_TOPIC_", "TEXTROUTE_BROKER_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


# ---- the worker ------------------------------------------------------------------------------


def worker_models_env(models: ModelSet) -> dict[str, str]:
    if models.pipelines is not None:
        return {"TEXTROUTE_WORKER_PIPELINES_PATH": str(models.pipelines)}
    if models.multitask is not None:
        return {"TEXTROUTE_WORKER_MODEL_DIR": str(models.multitask)}
    return {
        "TEXTROUTE_WORKER_CLASSIFIER_DIR": str(models.classifier),
        # Empty: no NER model (WorkerSettings reads a blank directory as unset).
        "TEXTROUTE_WORKER_NER_DIR": str(models.ner) if models.ner is not None else "",
    }


async def measure_worker(
    models: ModelSet, args: argparse.Namespace, broker: BrokerSettings, work: Path, tag: str
) -> tuple[list[MemorySample], str | None]:
    """The worker on `models`: ready after one message, then after --messages more."""
    slug = re.sub(r"\W", "-", models.name)
    topics = _topics(tag, f"mem-{slug}")
    await ensure_topics(broker, topics.all_topics(), topics.partitions)
    metrics_port = free_port()
    env = {
        **clean_env(),
        **topics.as_env(),
        **worker_models_env(models),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "TEXTROUTE_WORKER_APP_ID": f"bench-mem-{tag}-{slug}",
        "TEXTROUTE_WORKER_METRICS_PORT": str(metrics_port),
        "TEXTROUTE_WORKER_BATCH_SIZE": str(args.batch_size),
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        "TEXTROUTE_WORKER_LOG_LEVEL": "WARNING",
        "TEXTROUTE_WORKER_DATA_DIR": str(work / f"faust-{slug}"),
    }
    if args.rules and models.pipelines is None:
        env["TEXTROUTE_WORKER_RULES_PATH"] = str(args.rules)
    records = make_records(args.texts, args.messages + 1, f"m{tag}{slug}", seed=5, data=args.data)
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    samples: list[MemorySample] = []
    metric = None
    console.print(f"[bold]worker[/], {models.name}: starting")
    proc = launch(["stream", "worker"], env, work / f"worker-{slug}.log")
    try:
        async with Arrivals(broker, topics.routed) as arrivals, producer(broker) as prod:
            for phase, batch in (("ready", records[:1]), (f"after {args.messages}", records[1:])):
                for o in to_outbound(batch, topics):
                    await prod.send(o.topic, o.value, key=o.key)
                await prod.flush()
                await arrivals.wait_for([r.key for r in batch], proc, args.timeout)
                await asyncio.sleep(args.settle)
                got, found = sample(
                    "worker", models.name, phase, len(arrivals.first_seen), proc.pid, metrics_url
                )
                samples.append(got)
                metric = metric or found
    finally:
        stop(proc)
    return samples, metric


# ---- the API ---------------------------------------------------------------------------------


def api_models_env(models: ModelSet) -> dict[str, str]:
    if models.multitask is not None:
        # One classify-and-tag artifact in both roles, as tests/stream/api serve it.
        return {
            "TEXTROUTE_API_CLASSIFIER_DIR": str(models.multitask),
            "TEXTROUTE_API_NER_DIR": str(models.multitask),
        }
    return {
        "TEXTROUTE_API_CLASSIFIER_DIR": str(models.classifier),
        "TEXTROUTE_API_NER_DIR": str(models.ner) if models.ner is not None else "",
    }


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited with {proc.returncode} before it was ready")
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code == 200:
                return
            if ready.json().get("status") == "failed":
                raise RuntimeError(f"the API could not load its models: {ready.text}")
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the API was not ready within {timeout:.0f} s")


async def post_routes(url: str, texts: Sequence[str], concurrency: int) -> int:
    """POST each text to /v1/route, `concurrency` at a time; the number answered 200."""
    limit = asyncio.Semaphore(concurrency)
    ok = 0

    async def one(client: httpx.AsyncClient, text: str) -> None:
        nonlocal ok
        async with limit:
            response = await client.post("/v1/route", json={"text": text, "kind": "article"})
        if response.status_code != 200:
            raise RuntimeError(f"/v1/route answered {response.status_code}: {response.text}")
        ok += 1

    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(one(client, t) for t in texts))
    return ok


async def measure_api(
    models: ModelSet, args: argparse.Namespace, work: Path, tag: str
) -> tuple[list[MemorySample], str | None]:
    """The API on `models`: ready after one request, then after --requests more."""
    slug = re.sub(r"\W", "-", models.name)
    port = free_port()
    env = {
        **clean_env(),
        **api_models_env(models),
        "TEXTROUTE_API_HOST": "127.0.0.1",
        "TEXTROUTE_API_PORT": str(port),
        "TEXTROUTE_API_RELOAD_INTERVAL_S": "0",
        "TEXTROUTE_API_ACCESS_LOG": "false",
        "TEXTROUTE_API_LOG_LEVEL": "warning",
        # No broker for reviewers' feedback here: off, so no producer keeps retrying one.
        "TEXTROUTE_API_FEEDBACK": "false",
    }
    if args.rules:
        env["TEXTROUTE_API_RULES_PATH"] = str(args.rules)
    texts = [
        model_text(r)
        for r in make_records(args.texts, args.requests + 1, f"a{tag}", seed=6, data=args.data)
    ]
    url = f"http://127.0.0.1:{port}"
    samples: list[MemorySample] = []
    metric = None
    console.print(f"[bold]api[/], {models.name}: starting")
    proc = launch(["stream.api"], env, work / f"api-{slug}.log")
    try:
        await asyncio.to_thread(wait_ready, url, proc, args.timeout)
        done = 0
        for phase, batch in (("ready", texts[:1]), (f"after {args.requests}", texts[1:])):
            done += await post_routes(url, batch, args.concurrency)
            await asyncio.sleep(args.settle)
            got, found = sample("api", models.name, phase, done, proc.pid, f"{url}/metrics")
            samples.append(got)
            metric = metric or found
    finally:
        stop(proc)
    return samples, metric


# ---- orchestration ---------------------------------------------------------------------------


def smoke_pipelines(out: Path, classifier: str, ner: str) -> Path:
    """A pipelines file with the tiny models: one classifier named by all three kinds, the NER
    model by two (each should be loaded once)."""
    lines = ["version: 1", "models:", f"  topics: {classifier}", f"  ner: {ner}", "pipelines:"]
    for kind, models in (("article", "ner: ner, "), ("email", "ner: ner, "), ("ticket", "")):
        lines.append(
            f"  {kind}: {{classifier: topics, {models}allow_unmapped_labels: true, "
            "rules: {default_queue: triage}}"
        )
    path = out / "pipelines.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def model_sets(args: argparse.Namespace) -> list[ModelSet]:
    """Every set the given artifacts make, in SETS order, narrowed to --sets."""
    made: dict[str, ModelSet] = {}
    if args.classifier is not None:
        made["classifier"] = ModelSet("classifier", classifier=args.classifier)
        if args.ner is not None:
            made["classifier+ner"] = ModelSet(
                "classifier+ner", classifier=args.classifier, ner=args.ner
            )
    if args.multitask is not None:
        made["multitask"] = ModelSet("multitask", multitask=args.multitask)
    if args.pipelines is not None:
        made["pipelines"] = ModelSet("pipelines", pipelines=args.pipelines)
    wanted = args.sets or list(SETS)
    missing = [s for s in wanted if s not in made]
    if missing and args.sets:
        raise SystemExit(f"no artifacts given for model set(s) {', '.join(missing)}")
    return [made[s] for s in SETS if s in made and s in wanted]


def table(samples: Sequence[MemorySample], with_sessions: bool) -> Table:
    t = Table(title="textroute resident memory per process and model set")
    cols = ["process", "model set", "phase", "items", "RSS MB", "peak MB", "USS MB"]
    if with_sessions:
        cols.append("ONNX sessions")
    for col in cols:
        t.add_column(col, justify="left" if col in ("process", "model set", "phase") else "right")
    for s in samples:
        row = [
            s.process,
            s.model_set,
            s.phase,
            str(s.items),
            f"{s.rss_mb:.0f}",
            f"{s.peak_mb:.0f}",
            f"{s.uss_mb:.0f}" if s.uss_mb is not None else "-",
        ]
        if with_sessions:
            row.append(f"{s.onnx_sessions:g}" if s.onnx_sessions is not None else "-")
        t.add_row(*row)
    return t


async def run(args: argparse.Namespace) -> int:
    tag = uuid.uuid4().hex[:6]
    work = Path(tempfile.mkdtemp(prefix="textroute-memory-"))
    if args.smoke:
        console.print("building tiny models ...")
        classifier, ner, multitask, rules = smoke_models(work / "models")
        args.classifier, args.ner, args.multitask = Path(classifier), Path(ner), Path(multitask)
        args.rules = Path(rules)
        args.pipelines = smoke_pipelines(work, classifier, ner)
    if args.texts == "agnews" and not args.data.is_file():
        console.print(f"[yellow]{args.data} not found; using generated sample messages[/]")
        args.texts = "samples"
    sets = model_sets(args)
    if not sets:
        raise SystemExit("give --classifier (and --ner), --multitask or --pipelines, or --smoke")
    samples: list[MemorySample] = []
    notes: list[str] = []
    metrics: dict[str, str | None] = {}  # process -> its ONNX-session metric
    embedded = None
    try:
        if "worker" in args.processes:
            if args.bootstrap:
                bootstrap = args.bootstrap
            else:
                embedded = EmbeddedBroker(
                    EmbeddedBrokerSettings(port=0, log_file=work / "broker.log")
                )
                bootstrap = embedded.start().bootstrap
            broker = BrokerSettings(bootstrap_servers=bootstrap)
            for models in sets:
                got, found = await measure_worker(models, args, broker, work, tag)
                samples += got
                metrics["worker"] = metrics.get("worker") or found
        if "api" in args.processes:
            for models in sets:
                if models.pipelines is not None:
                    notes.append("api, pipelines: skipped (the API serves no pipelines file)")
                    continue
                got, found = await measure_api(models, args, work, tag)
                samples += got
                metrics["api"] = metrics.get("api") or found
    finally:
        if embedded is not None:
            embedded.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            console.print(f"work dir (logs, smoke models): {work}")
    for process, metric in metrics.items():
        notes.append(
            f"ONNX sessions, {process}: from its metric {metric}"
            if metric
            else f"ONNX sessions, {process}: its /metrics has no metric naming ONNX sessions "
            "or graphs (shown as -)"
        )
    with_sessions = any(metrics.values())
    if not any(s.uss_mb is not None for s in samples):
        notes.append("USS: psutil is not installed (or could not read the processes)")
    console.print(table(samples, with_sessions=with_sessions))
    for note in notes:
        console.print(f"[dim]{note}[/]")
    if args.json is not None:
        payload: dict[str, object] = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
            "settings": settings_of(args),
            "onnx_session_metrics": metrics,
            "samples": [asdict(s) for s in samples],
            "notes": notes,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


def settings_of(args: argparse.Namespace) -> Mapping[str, object]:
    return {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k not in ("json",)
    }


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--classifier", type=Path, help="classifier artifact")
    p.add_argument("--ner", type=Path, help="NER artifact (with --classifier: classifier+ner)")
    p.add_argument("--multitask", type=Path, help="classify-and-tag artifact")
    p.add_argument("--pipelines", type=Path, help="pipelines YAML (worker only)")
    p.add_argument("--rules", type=Path, default=None, help="routing rules (default: packaged)")
    p.add_argument(
        "--sets", type=lambda v: [s for s in v.split(",") if s], default=None,
        help=f"model sets to measure, comma-separated, of {', '.join(SETS)} (default: all given)",
    )  # fmt: skip
    p.add_argument(
        "--processes", type=lambda v: [s for s in v.split(",") if s], default=list(PROCESSES),
        help="worker,api (default both)",
    )  # fmt: skip
    p.add_argument("--messages", type=int, default=None, help="worker messages after ready")
    p.add_argument("--requests", type=int, default=None, help="API requests after ready")
    p.add_argument("--concurrency", type=int, default=8, help="concurrent API clients")
    p.add_argument("--batch-size", type=int, default=32, help="worker batch size")
    p.add_argument("--settle", type=float, default=1.0, help="seconds before each reading")
    p.add_argument("--texts", choices=["agnews", "samples"], default="agnews")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AG News CSV")
    p.add_argument("--bootstrap", default=None, help="Kafka to use (default: embedded tansu)")
    p.add_argument("--timeout", type=float, default=300.0, help="max seconds per phase")
    p.add_argument("--smoke", action="store_true", help="tiny trained models, few messages")
    p.add_argument("--keep", action="store_true", help="keep the work dir (logs, smoke models)")
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args(argv)
    bad = [s for s in args.sets or [] if s not in SETS] + [
        s for s in args.processes if s not in PROCESSES
    ]
    if bad:
        p.error(f"unknown set or process: {', '.join(bad)}")
    if args.messages is None:
        args.messages = 50 if args.smoke else 1000
    if args.requests is None:
        args.requests = 50 if args.smoke else 1000
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
