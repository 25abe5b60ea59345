"""Long-text benchmark: texts/s and p50/p99 latency per call against text length, per policy.

Times one artifact (a classifier, multi-label, NER or classify-and-tag model) on texts of
exactly 64, 128, 256, 512 and 2048 tokens of text (before the special tokens), cut at word
boundaries from the AG News test descriptions joined end to end (generated topic sentences when
../shared/data is absent), under each long-text policy (InferenceSettings.long_text: truncate,
head_tail, chunks) at batch 32 and batch 1 (texts per predictor call, as the worker passes
them; the backend batches rows up to max_batch, 32, either way). A text past the model's
max_length costs truncate and head_tail one backend row; chunks, one row per window, which the
table shows as rows/text. The graph is loaded once; each policy is a `with_long_text` twin of
the one predictor, as a pipeline with its own `long_text:` gets in the worker.

    python bench/text_length.py --model models/classifier --json out.json \
        --plot bench/plots/text_length.png
    python bench/text_length.py --model models/tickets-queue --backend torch --precision fp32
    python bench/text_length.py --smoke            # a tiny trained model, in under a minute
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ag_news" / "test.csv"
LENGTHS = (64, 128, 256, 512, 2048)
BATCHES = (32, 1)
Policy = Literal["truncate", "head_tail", "chunks"]
POLICIES: tuple[Policy, ...] = ("truncate", "head_tail", "chunks")
#: Texts timed per measurement (--texts) and passes over them, the median one kept (--repeat);
#: --smoke: SMOKE_TEXTS and one pass.
TEXTS = 64
REPEAT = 3
SMOKE_TEXTS = 16
#: ONNX Runtime's idle threads spin between runs, as in bench/inference_speed.py: this process
#: does nothing but inference (the worker and API default to off; InferenceSettings.spin).
SPIN = True
console = Console(width=120)


@dataclass
class Result:
    policy: str
    tokens: int
    batch: int
    texts: int
    #: Backend rows (windows) per text: 1 but for chunks past max_length.
    rows_per_text: float
    seconds: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    #: texts/s against truncate's at the same length and batch.
    vs_truncate: float | None = None


def corpus(data: Path) -> tuple[str, str]:
    """(text, source): the AG News test descriptions joined by spaces, whitespace collapsed, or
    generated topic sentences when the file is absent."""
    if data.is_file():
        with data.open(newline="", encoding="utf-8") as f:
            texts = [row["description"] for row in csv.DictReader(f)]
        source = str(data)
    else:
        from training.tiny import topic_texts

        texts, _ = topic_texts(20_000, seed=0)
        source = "generated (training.tiny.topic_texts)"
    return " ".join(" ".join(t.split()) for t in texts), source


def exact_length_texts(tokenizer_json: Path, text: str, tokens: int, count: int) -> list[str]:
    """`count` texts of exactly `tokens` tokens (no special tokens) cut from `text`, each
    starting and ending at a word boundary so that it tokenizes alone as it did in `text`;
    consecutive while `text` lasts, then again from further starts (overlapping)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_padding()
    tok.no_truncation()
    enc = tok.encode(text, add_special_tokens=False)
    n = len(enc.ids)
    if n < tokens + 1:
        raise ValueError(f"the corpus has {n} tokens, fewer than the {tokens} asked for")
    words = enc.word_ids
    starts = [i for i in range(n) if i == 0 or words[i] != words[i - 1]]
    is_start = set(starts) | {n}
    out: list[str] = []
    shift, at, tried = 0, 0, 0
    while len(out) < count:
        tried += 1
        if tried > 50 * count + len(starts):
            raise ValueError(f"cannot cut {count} texts of {tokens} tokens from the corpus")
        if at >= len(starts) or starts[at] + tokens > n:
            # Corpus used up: start again one word further on, so texts differ.
            shift += 1
            at = shift % len(starts)
            continue
        first = starts[at]
        end = first + tokens
        if end not in is_start:  # the last token would split a word: try the next start
            at += 1
            continue
        piece = text[enc.offsets[first][0] : enc.offsets[end - 1][1]]
        if len(tok.encode(piece, add_special_tokens=False).ids) == tokens:
            out.append(piece)
        at = next((j for j in range(at + 1, len(starts)) if starts[j] >= end), len(starts))
    return out


def timed_calls(
    run: Callable[[list[str]], object], texts: list[str], batch: int, repeat: int
) -> tuple[list[float], list[float]]:
    """(seconds per call of the median pass, seconds per call of every pass): `run` on
    consecutive slices of `batch` texts, after one warm-up call, `repeat` passes."""
    from timing import median_pass, timed_passes

    passes = timed_passes(run, texts, batch, repeat)
    return median_pass(passes), [t for times in passes for t in times]


def runner(predictor: Any) -> tuple[str, Callable[[list[str]], object]]:
    """(method name, method) the artifact serves texts with: class and entities in one pass
    for a classify-and-tag model, entities for a tagger, else the class."""
    from inference import MultiTaskPredictor
    from schemas import TaskKind

    if isinstance(predictor, MultiTaskPredictor):
        return "classify_and_tag", predictor.classify_and_tag
    if predictor.manifest.task is TaskKind.TOKEN_CLASSIFICATION:
        return "entities", predictor.entities
    return "classify", predictor.classify


def bench(
    model: Path,
    texts_by_length: dict[int, list[str]],
    *,
    policies: Sequence[Policy],
    batches: Sequence[int],
    settings: dict[str, Any],
    repeat: int,
) -> tuple[list[Result], dict[str, Any]]:
    """Every (policy, length, batch) measured on one loaded graph; the model's description."""
    from timing import call_stats

    from inference import InferenceSettings, TextEncoder, load_predictor, with_long_text

    base = load_predictor(model, InferenceSettings.model_validate(settings))
    method, _ = runner(base)
    max_length = base.manifest.max_length
    encoder = TextEncoder(model / "tokenizer.json", max_length, stride=base.settings.chunk_stride)
    about = {
        "name": base.manifest.name,
        "task": base.manifest.task.value,
        "max_length": max_length,
        "backend": base.backend_name,
        "method": method,
        "chunk_stride": base.settings.chunk_stride,
    }
    console.print(
        f"{about['name']} ({about['task']}, max_length {max_length}) on {base.backend_name}: "
        f"{method}"
    )
    results: list[Result] = []
    for policy in policies:
        predictor = with_long_text(base, policy)
        _, run = runner(predictor)
        for tokens, texts in texts_by_length.items():
            rows = len(encoder.encode(list(enumerate(texts)), policy).rows)
            for batch in batches:
                console.print(f"[bold]{policy}[/]: {tokens} tokens, batch {batch}")
                median, every = timed_calls(run, texts, batch, repeat)
                results.append(
                    Result(
                        policy=policy,
                        tokens=tokens,
                        batch=batch,
                        texts=len(texts),
                        rows_per_text=rows / len(texts),
                        **call_stats(len(texts), median, every),
                    )
                )
    truncate = {(r.tokens, r.batch): r.texts_per_s for r in results if r.policy == "truncate"}
    for r in results:
        if (r.tokens, r.batch) in truncate:
            r.vs_truncate = r.texts_per_s / truncate[(r.tokens, r.batch)]
    return results, about


def table(results: Sequence[Result], about: dict[str, Any]) -> Table:
    out = Table(title=f"textroute long-text policies: {about['name']} ({about['backend']})")
    columns = ("policy", "tokens", "batch", "rows/text", "texts/s", "p50 ms", "p99 ms", "vs trunc")
    for col in columns:
        out.add_column(col, justify="left" if col == "policy" else "right")
    for r in sorted(results, key=lambda r: (-r.batch, r.tokens, POLICIES.index(r.policy))):
        out.add_row(
            r.policy,
            str(r.tokens),
            str(r.batch),
            f"{r.rows_per_text:.1f}",
            f"{r.texts_per_s:.1f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.vs_truncate:.2f}x" if r.vs_truncate is not None else "",
        )
    out.caption = (
        f"max_length {about['max_length']}, {about['method']}; tokens of text before the "
        "special tokens; p50/p99 per predictor call over every pass"
    )
    return out


def plot(path: Path, results: Sequence[Result], about: dict[str, Any], threads: int) -> Path:
    """Texts/s against text length (log axes), one colour per policy: batch 32 solid, batch 1
    dashed (whatever batches were measured: the largest solid, the others dashed)."""
    from plots import Series, line_plot

    colors = {"truncate": "tab:blue", "head_tail": "tab:orange", "chunks": "tab:green"}
    batches = sorted({r.batch for r in results}, reverse=True)
    series = []
    for policy in dict.fromkeys(r.policy for r in results):
        for batch in batches:
            points = sorted(
                (r.tokens, r.texts_per_s) for r in results if (r.policy, r.batch) == (policy, batch)
            )
            series.append(
                Series(
                    f"{policy}, batch {batch}",
                    [x for x, _ in points],
                    [y for _, y in points],
                    "-o" if batch == batches[0] else "--s",
                    colors.get(policy),
                )
            )
    caption = (
        f"{about['name']} ({about['backend']}, max_length {about['max_length']}); "
        f"{os.cpu_count()} CPUs, {threads} threads; {platform.processor() or 'cpu'}"
    )
    return line_plot(
        path,
        series,
        title="Throughput against text length, per long-text policy",
        xlabel="text length (tokens)",
        ylabel="throughput (texts/s)",
        xlog=True,
        ylog=True,
        hlines=None,
        caption=caption,
    )


def smoke_model(out: Path, task: str) -> Path:
    """A tiny trained classifier (or classify-and-tag model) exported to ONNX int8."""
    from training.export import EvalSample, export_artifact
    from training.tiny import TOPICS, build_tiny_classifier, build_tiny_multitask, topic_texts

    if task == "multitask":
        artifact = build_tiny_multitask(out / "multitask", epochs=2.0)
        export_artifact(artifact)
        return artifact
    artifact = build_tiny_classifier(out / "classifier", steps=30)
    texts, labels = topic_texts(64, seed=2)
    export_artifact(artifact, eval_data=EvalSample.from_labelled(texts, labels, TOPICS))
    return artifact


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="Artifact directory (exported to ONNX).")
    parser.add_argument(
        "--smoke",
        nargs="?",
        const="classifier",
        choices=("classifier", "multitask"),
        help="Build a tiny trained model (classifier, or multitask) and time it briefly.",
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AG News test.csv.")
    parser.add_argument("--lengths", default=",".join(map(str, LENGTHS)), help="Tokens a text.")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES)), help="Texts a call.")
    parser.add_argument("--policies", default=",".join(POLICIES), help="Long-text policies.")
    parser.add_argument(
        "--texts", type=int, help=f"Texts per measurement (default {TEXTS}; smoke {SMOKE_TEXTS})."
    )
    parser.add_argument(
        "--repeat", type=int, help=f"Passes, the median kept (default {REPEAT}; smoke 1)."
    )
    parser.add_argument("--backend", default="onnx", choices=("onnx", "torch"))
    parser.add_argument("--precision", default="int8", help="int8/fp32 (onnx), fp32 (torch).")
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores.")
    parser.add_argument("--chunk-stride", type=int, help="Tokens shared by chunks (default 32).")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    parser.add_argument(
        "--plot",
        type=Path,
        help="Write a PNG of texts/s against length here (a bare name: under bench/plots/).",
    )
    args = parser.parse_args(argv)

    lengths, batches = _ints(args.lengths), _ints(args.batches)
    asked = [p for p in args.policies.split(",") if p]
    if unknown := set(asked) - set(POLICIES):
        parser.error(f"unknown policies {sorted(unknown)}; known: {', '.join(POLICIES)}")
    policies = [p for p in POLICIES if p in asked]
    if args.model is None and args.smoke is None:
        parser.error("give --model DIR or --smoke")
    smoke = args.smoke is not None
    texts = args.texts or (SMOKE_TEXTS if smoke else TEXTS)
    repeat = args.repeat or (1 if smoke else REPEAT)
    with contextlib.ExitStack() as stack:
        model = args.model
        if args.smoke is not None:
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="textroute-length-"))
            console.print(f"smoke: building a tiny {args.smoke} in {work}")
            model = smoke_model(Path(work), args.smoke)
        return run(args, model, lengths, batches, policies, texts, repeat)


def run(
    args: argparse.Namespace,
    model: Path,
    lengths: Sequence[int],
    batches: Sequence[int],
    policies: Sequence[Policy],
    texts: int,
    repeat: int,
) -> int:
    """Measure, print the table, write the plot and JSON asked for; the exit status."""
    from inference import OnnxFileMissingError

    settings: dict[str, Any] = {
        "backend": args.backend,
        "precision": args.precision,
        "threads": args.threads,
        "spin": SPIN,
    }
    if args.chunk_stride is not None:
        settings["chunk_stride"] = args.chunk_stride
    text, source = corpus(args.data)
    texts_by_length = {
        n: exact_length_texts(model / "tokenizer.json", text, n, texts) for n in lengths
    }
    console.print(f"{texts} texts a length from {source}")
    try:
        results, about = bench(
            model,
            texts_by_length,
            policies=policies,
            batches=batches,
            settings=settings,
            repeat=repeat,
        )
    except OnnxFileMissingError as exc:
        console.print(f"[red]{exc}[/] (or pass --backend torch --precision fp32)")
        return 2
    console.print(table(results, about))
    threads = args.threads or (os.cpu_count() or 1)
    if args.plot is not None:
        console.print(f"plot: {plot(args.plot, results, about, threads)}")
    if args.json is not None:
        import onnxruntime

        payload = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {
                "cpus": os.cpu_count(),
                "threads": threads,
                "processor": platform.processor(),
                "python": platform.python_version(),
                "onnxruntime": onnxruntime.__version__,
            },
            "model": about,
            "data": source,
            "texts_per_measurement": texts,
            "repeat": repeat,
            "results": [asdict(r) for r in results],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
