"""Where an ONNX graph spends its time: ONNX Runtime's profiler, summed per operator type.

Runs an artifact's int8 (or fp32) graph, or any graph file given with --graph, over real AG News
test descriptions in length-sorted batches, with the session options the stream serves with (or
ONNX Runtime's defaults, --ort-fusions), and prints texts/s and the share of kernel time per op
type. This is how the slow fused kernels left out at export were found (bench/RESULTS.md).

    python bench/onnx_profile.py models/agnews-minilm-mean --threads 1
"""

from __future__ import annotations

import argparse
import collections
import csv
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ag_news" / "test.csv"
console = Console()


def batches(
    artifact: Path, texts: Sequence[str], batch: int, max_length: int
) -> list[dict[str, np.ndarray]]:
    """Length-sorted, padded input batches (the predictor's bucketing at its best), encoded and
    padded as the stream does."""
    from inference import TextEncoder, pad

    encoder = TextEncoder(artifact / "tokenizer.json", max_length, stride=0)
    rows = sorted(encoder.encode(list(enumerate(texts)), "truncate").rows, key=lambda r: len(r.ids))
    return [pad(rows[i : i + batch], encoder.pad_id) for i in range(0, len(rows), batch)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artifact", type=Path, help="Exported artifact (tokenizer, manifest).")
    parser.add_argument("--graph", type=Path, help="ONNX file to run (default: its int8 file).")
    parser.add_argument("--fp32", action="store_true", help="The artifact's fp32 file.")
    parser.add_argument("--ort-fusions", action="store_true", help="ONNX Runtime's defaults.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--text-column", default="description")
    parser.add_argument("--limit", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--passes", type=int, default=2, help="Timed passes (profiled).")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from inference import SLOW_FUSIONS, session_options
    from schemas.artifact import read_manifest

    manifest = read_manifest(args.artifact, verify=False)
    graph = args.graph or args.artifact / ("model.onnx" if args.fp32 else "model.int8.onnx")
    with args.data.open(encoding="utf-8") as fh:
        texts = [row[args.text_column] for row in csv.DictReader(fh)][: args.limit]
    feeds = batches(args.artifact, texts, args.batch, manifest.max_length)

    # Spinning, as bench/inference_speed.py measures: this process does nothing but inference.
    options = session_options(threads=args.threads, spin=True)
    options.enable_profiling = True
    session = ort.InferenceSession(
        str(graph),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=[] if args.ort_fusions else list(SLOW_FUSIONS),
    )
    names = [i.name for i in session.get_inputs()]
    session.run(None, {n: feeds[0][n] for n in names})
    seconds = []
    for _ in range(args.passes):
        started = time.perf_counter()
        for feed in feeds:
            session.run(None, {n: feed[n] for n in names})
        seconds.append(time.perf_counter() - started)
    profile = Path(session.end_profiling())
    per_op: collections.Counter[str] = collections.Counter()
    for event in json.loads(profile.read_text(encoding="utf-8")):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    profile.unlink()

    total = sum(per_op.values())
    table = Table(title=f"{graph.name}: {len(texts) / min(seconds):.1f} texts/s (profiled)")
    for col in ("op type", "ms per pass", "share"):
        table.add_column(col, justify="left" if col == "op type" else "right")
    for op, micros in per_op.most_common():
        if micros / total >= 0.001:
            per_pass = micros / 1000 / (args.passes + 1 / len(feeds))
            table.add_row(op, f"{per_pass:.1f}", f"{micros / total:.1%}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
