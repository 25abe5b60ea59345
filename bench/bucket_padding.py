"""Length buckets on CPU: texts/s of the int8 predictors against the bucket pad ratio.

A batch is cut into length buckets (a bucket closes at a text `ratio` times its shortest one's
length) and the buckets run side by side, one ONNX Runtime thread each. A low ratio pads less and
gives the threads more, smaller pieces to share out; a high one makes fewer, larger calls. This
times each artifact's batch call (`classify`, or `classify_and_tag` for a classify-and-tag
artifact) at each ratio on the same AG News test texts (title and description, as the worker
reads an article), in rounds that visit every ratio in turn, so drift in the machine's speed
falls on all of them alike; the median round per ratio is reported.

    python bench/bucket_padding.py --artifact models/multitask-quick-l3 --artifact models/classifier
    python bench/bucket_padding.py --artifact DIR --ratios 1.0,1.1,1.25 --rounds 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table
from stream_throughput import DEFAULT_DATA, agnews_records, model_text
from timing import timed_passes

from inference import InferenceSettings, MultiTaskPredictor, load_predictor

console = Console(width=120)


def article_texts(path: Path, limit: int) -> list[str]:
    """The first `limit` AG News test articles as the worker's model text: title, description
    (the stream benchmark's messages, read as the worker reads them)."""
    return [model_text(record) for record in agnews_records(path, limit, "padding")]


def batch_call(artifact: Path, ratio: float, batch: int) -> Callable[[list[str]], object]:
    settings = InferenceSettings(
        backend="onnx", precision="int8", max_batch=batch, bucket_pad_ratio=ratio
    )
    predictor = load_predictor(artifact, settings)
    if isinstance(predictor, MultiTaskPredictor):
        return predictor.classify_and_tag
    return predictor.classify


def one_pass(call: Callable[[list[str]], object], texts: list[str], batch: int) -> float:
    """texts/s of one pass over `texts` in consecutive calls of `batch`."""
    (times,) = timed_passes(call, texts, batch, 1, warmup_calls=0)
    return len(texts) / sum(times)


def measure(
    artifact: Path, texts: list[str], ratios: Sequence[float], batch: int, rounds: int
) -> dict[float, list[float]]:
    """texts/s per ratio, one pass per round, ratios in turn within each round."""
    calls = {ratio: batch_call(artifact, ratio, batch) for ratio in ratios}
    for call in calls.values():
        call(texts[:batch])  # warm-up: first calls allocate
    rates: dict[float, list[float]] = {ratio: [] for ratio in ratios}
    for round_ in range(rounds):
        console.print(f"[dim]{artifact.name}: round {round_ + 1} of {rounds}[/]")
        for ratio, call in calls.items():
            rates[ratio].append(one_pass(call, texts, batch))
    return rates


def ratios_arg(value: str) -> list[float]:
    try:
        ratios = [float(v) for v in value.split(",") if v.strip()]
    except ValueError:
        message = f"ratios are numbers, comma-separated: {value!r}"
        raise argparse.ArgumentTypeError(message) from None
    if not ratios or any(r < 1.0 for r in ratios):
        raise argparse.ArgumentTypeError(f"ratios are 1.0 or more: {value!r}")
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifact", type=Path, action="append", required=True, help="Exported artifact (repeat)."
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AG News test.csv.")
    parser.add_argument("--limit", type=int, default=1024, help="Texts per pass.")
    parser.add_argument("--batch", type=int, default=32, help="Texts per call (the worker's).")
    parser.add_argument("--ratios", type=ratios_arg, default=ratios_arg("1.0,1.05,1.1,1.25,1.5"))
    parser.add_argument("--rounds", type=int, default=5, help="Passes per ratio; median kept.")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    args = parser.parse_args(argv)
    missing = [str(a) for a in args.artifact if not (a / "manifest.json").is_file()]
    if missing:
        parser.error(f"not an exported artifact (no manifest.json): {', '.join(missing)}")
    if not args.data.is_file():
        parser.error(f"AG News test CSV not found: {args.data}")
    texts = article_texts(args.data, args.limit)
    started = datetime.now(timezone.utc)
    results: dict[str, dict[str, list[float]]] = {}
    table = Table(title=f"texts/s at batch {args.batch}, int8, median of {args.rounds} rounds")
    table.add_column("artifact")
    for ratio in args.ratios:
        table.add_column(f"ratio {ratio:g}", justify="right")
    for artifact in args.artifact:
        rates = measure(artifact, texts, args.ratios, args.batch, args.rounds)
        results[str(artifact)] = {f"{r:g}": v for r, v in rates.items()}
        medians = [statistics.median(rates[r]) for r in args.ratios]
        best = max(medians)
        table.add_row(
            artifact.name,
            *(f"[bold]{m:.1f}[/]" if m == best else f"{m:.1f}" for m in medians),
        )
    console.print(table)
    if args.json is not None:
        payload = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "started": started.isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "texts": len(texts),
            "batch": args.batch,
            "texts_per_s": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
