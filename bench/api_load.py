"""HTTP API load check: single-text requests with and without cross-request batching, one run.

Starts the API (`python -m stream.api`) on a free loopback port once per mode, drives it with a
closed loop of concurrent clients sending one text per request to /v1/classify for a bounded
time and count, and prints requests/s, latency percentiles, errors and the mean number of
items per model call (from the server's own /metrics). Loopback only; every run stops itself.

    python bench/api_load.py --classifier models/classifier --duration 20 --concurrency 16
    python bench/api_load.py --smoke-dir /tmp/smoke --duration 3   # untrained MiniLM heads
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import itertools
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ag_news" / "test.csv"
FALLBACK_TEXTS = [
    "Stocks rallied after the central bank held rates and oil prices eased.",
    "The home side won the cup final with a late goal in extra time.",
    "A new chip promises faster phones and longer battery life, the company said.",
    "Ministers met for talks on the ceasefire as troops pulled back from the border.",
]
# Wide enough for the results table when the output is a file or a pipe.
console = Console(width=120)


@dataclass
class ModeResult:
    mode: str
    requests: int
    errors: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_model_batch: float


def load_texts(path: Path, limit: int) -> list[str]:
    """AG News test descriptions when the shared data is there, else a few built-in sentences."""
    if not path.is_file():
        console.print(f"[yellow]{path} not found; using {len(FALLBACK_TEXTS)} built-in texts")
        return FALLBACK_TEXTS
    with path.open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh)
        texts = [" ".join(row["description"].split()) for row in itertools.islice(rows, limit)]
    return [t for t in texts if t]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    classifier: Path, batching: bool, args: argparse.Namespace
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTROUTE_")}
    env.update(
        TEXTROUTE_API_HOST="127.0.0.1",
        TEXTROUTE_API_PORT=str(port),
        TEXTROUTE_API_CLASSIFIER_DIR=str(classifier),
        TEXTROUTE_API_NER_DIR="",
        TEXTROUTE_API_BATCHING=str(batching).lower(),
        TEXTROUTE_API_BATCH_MAX_SIZE=str(args.batch_max_size),
        TEXTROUTE_API_BATCH_MAX_WAIT_MS=str(args.batch_max_wait_ms),
        TEXTROUTE_API_ACCESS_LOG="false",
        TEXTROUTE_API_LOG_LEVEL="warning",
        TEXTROUTE_API_RELOAD_INTERVAL_S="0",
        TEXTROUTE_INFERENCE_BACKEND="onnx",
    )
    proc = subprocess.Popen([sys.executable, "-m", "stream.api"], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the API exited with {proc.returncode} before it was ready")
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code == 200:
                return proc, url
            if ready.json().get("status") == "failed":
                stop_server(proc)
                raise SystemExit(f"the API could not load the model: {ready.json()['error']}")
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_server(proc)
    raise SystemExit("the API did not become ready within 120 s")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def model_batches(url: str) -> tuple[float, float]:
    """(model calls, items in them) so far, read from the server's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    count = total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.labels.get("model") != "classifier":
                continue
            if sample.name == "textroute_api_batch_size_count":
                count = sample.value
            elif sample.name == "textroute_api_batch_size_sum":
                total = sample.value
    return count, total


async def drive(
    url: str, texts: Sequence[str], *, concurrency: int, duration_s: float, max_requests: int
) -> tuple[list[float], int, float]:
    """Closed loop: `concurrency` clients, each sending its next request when the last is
    answered, until `duration_s` passes or `max_requests` were sent. (latencies, errors, s)."""
    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        deadline = started + duration_s

        async def one_client() -> None:
            nonlocal errors, sent
            while time.perf_counter() < deadline and sent < max_requests:
                text = texts[sent % len(texts)]
                sent += 1
                t0 = time.perf_counter()
                try:
                    response = await client.post("/v1/classify", json={"text": text})
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def percentile(values: Sequence[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def run_mode(
    mode: str, batching: bool, classifier: Path, texts: Sequence[str], args: argparse.Namespace
) -> ModeResult:
    proc, url = start_server(classifier, batching, args)
    try:
        # Warm-up: first calls pay for session and allocator set-up.
        asyncio.run(
            drive(
                url, texts, concurrency=args.concurrency, duration_s=args.warmup, max_requests=10**9
            )
        )
        calls_before, items_before = model_batches(url)
        latencies, errors, elapsed = asyncio.run(
            drive(
                url,
                texts,
                concurrency=args.concurrency,
                duration_s=args.duration,
                max_requests=args.max_requests,
            )
        )
        calls, items = model_batches(url)
    finally:
        stop_server(proc)
    if len(latencies) < 2:
        raise SystemExit(f"{mode}: only {len(latencies)} successful requests; run longer")
    ms = [x * 1000 for x in latencies]
    return ModeResult(
        mode=mode,
        requests=len(latencies),
        errors=errors,
        seconds=round(elapsed, 2),
        requests_per_s=round(len(latencies) / elapsed, 1),
        p50_ms=round(statistics.median(ms), 1),
        p90_ms=round(percentile(ms, 90), 1),
        p99_ms=round(percentile(ms, 99), 1),
        max_ms=round(max(ms), 1),
        mean_model_batch=round((items - items_before) / max(calls - calls_before, 1), 2),
    )


def show(results: Sequence[ModeResult], caption: str) -> None:
    table = Table(title="textroute HTTP API: single-text POST /v1/classify", caption=caption)
    columns = ("mode", "requests", "errors", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms")
    for column in (*columns, "items/model call"):
        table.add_column(column, justify="left" if column == "mode" else "right")
    for r in results:
        table.add_row(
            r.mode, str(r.requests), str(r.errors), f"{r.requests_per_s:.1f}", f"{r.p50_ms:.1f}",
            f"{r.p90_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.max_ms:.1f}", f"{r.mean_model_batch:.2f}",
        )  # fmt: skip
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", type=Path, help="Classifier artifact directory.")
    parser.add_argument("--smoke-dir", type=Path, help="Build an untrained MiniLM artifact here.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV with `description`.")
    parser.add_argument("--texts", type=int, default=2000, help="How many texts to cycle through.")
    parser.add_argument("--concurrency", type=int, default=16, help="Concurrent clients.")
    parser.add_argument("--duration", type=float, default=10.0, help="Seconds per mode.")
    parser.add_argument("--warmup", type=float, default=2.0, help="Unmeasured seconds per mode.")
    parser.add_argument("--max-requests", type=int, default=50_000, help="Cap per mode.")
    parser.add_argument("--batch-max-size", type=int, default=32)
    parser.add_argument("--batch-max-wait-ms", type=float, default=5.0)
    parser.add_argument("--json", type=Path, help="Also write the results here.")
    args = parser.parse_args(argv)

    if args.smoke_dir is not None:
        from training.smoke import build_smoke_artifacts

        classifier, _, _ = build_smoke_artifacts(args.smoke_dir)
    elif args.classifier is not None:
        classifier = args.classifier
    else:
        parser.error("give --classifier DIR or --smoke-dir DIR")

    texts = load_texts(args.data, args.texts)
    results = [
        run_mode("batching", True, classifier, texts, args),
        run_mode("no-batching", False, classifier, texts, args),
    ]
    caption = (
        f"{args.concurrency} concurrent clients, {args.duration:.0f} s per mode, batch <= "
        f"{args.batch_max_size}, wait <= {args.batch_max_wait_ms:g} ms; {os.cpu_count()} CPUs; "
        f"model {classifier}"
    )
    show(results, caption)
    if args.json is not None:
        report: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "settings": {k: str(v) for k, v in vars(args).items()},
            "classifier": str(classifier),
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
