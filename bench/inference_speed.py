"""Inference benchmark: naive pipeline vs PyTorch vs ONNX fp32/int8, against the CPU's int8 bound.

Measures, in one run on the same real AG News test descriptions, throughput (texts/s) and p50/p99
batch latency of: the transformers pipeline one text at a time (the naive baseline), and the
textroute predictor on PyTorch fp32, ONNX fp32 and ONNX int8 at several batch sizes, for the
classifier and (optionally) the NER model. It also measures this machine's int8 matmul rate with
ONNX Runtime, prints the compute bound (texts/s) it implies for the model, and each result as a
fraction of it. With --accuracy it scores fp32 and int8 ONNX on every text given (--limit 0 for
the whole test set). With --multitask DIR it also times a classify-and-tag artifact
(`classify_and_tag`: class and entities from one encoder pass) against the classifier and NER
model run one after the other, and against the two naive pipelines together.

    python bench/inference_speed.py --classifier models/classifier --ner models/ner --json out.json
    python bench/inference_speed.py ... --multitask models/multitask      # one encoder vs two
    python bench/inference_speed.py --smoke-dir /tmp/smoke --limit 200     # untrained MiniLM heads
    python bench/inference_speed.py ... --plot speed.png   # texts/s against batch size (PNG)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from training.smoke import build_smoke_artifacts

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "ag_news" / "test.csv"
console = Console(width=120)


@dataclass
class Result:
    model: str
    engine: str
    batch: int
    texts: int
    seconds: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    speedup_vs_naive: float | None = None
    fraction_of_bound: float | None = None


def load_texts(path: Path, columns: str, limit: int) -> tuple[list[str], list[int]]:
    """Texts (comma-separated columns joined as training joins them) and integer labels."""
    from training.data import load_labelled_texts

    data = load_labelled_texts(
        str(path), text_columns=columns.split(","), limit=limit if limit > 0 else None
    )
    return data.texts, [int(data.label_names[i]) for i in data.labels]


def timed_batches(
    run: Callable[[list[str]], object], texts: list[str], batch: int, repeat: int
) -> list[float]:
    """Seconds per call of `run` on consecutive slices of `batch` texts (after one warm-up), from
    the median of `repeat` passes over the texts."""
    from timing import median_pass, timed_passes

    return median_pass(timed_passes(run, texts, batch, repeat))


def summarize(model: str, engine: str, batch: int, n: int, times: Sequence[float]) -> Result:
    from timing import call_stats

    return Result(model=model, engine=engine, batch=batch, texts=n, **call_stats(n, times))


def int8_matmul_rate(threads: int, m: int = 2048, k: int = 384, n: int = 1536) -> float:
    """Ops/s of ONNX Runtime's dynamic int8 matmul (the quantized model's pattern) on this CPU."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 127, size=(k, n), dtype=np.int8)
    nodes = [
        helper.make_node("DynamicQuantizeLinear", ["a"], ["aq", "as", "az"]),
        helper.make_node("MatMulInteger", ["aq", "w", "az", "wz"], ["acc"]),
        helper.make_node("Cast", ["acc"], ["accf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["as", "ws"], ["scale"]),
        helper.make_node("Mul", ["accf", "scale"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "int8_matmul",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [m, n])],
        [
            onnx.numpy_helper.from_array(weight, "w"),
            onnx.numpy_helper.from_array(np.array(0, dtype=np.int8), "wz"),
            onnx.numpy_helper.from_array(np.array(0.01, dtype=np.float32), "ws"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    a = rng.standard_normal((m, k), dtype=np.float32)
    for _ in range(3):
        session.run(None, {"a": a})
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        session.run(None, {"a": a})
        times.append(time.perf_counter() - t0)
    # The best repetition: the machine's capability, least disturbed by other processes.
    return 2.0 * m * k * n / min(times)


def flops_per_token(config: dict[str, Any], seq: float) -> float:
    """Encoder matmul FLOPs per token: projections and FFN (2 per weight) plus attention scores."""
    h = config["hidden_size"]
    ff = config.get("intermediate_size", 4 * h)
    layers = config["num_hidden_layers"]
    per_layer = 2 * (4 * h * h + 2 * h * ff) + 2 * 2 * seq * h
    return float(layers * per_layer)


def mean_tokens(artifact: Path, texts: Sequence[str], max_length: int) -> float:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(artifact / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return float(np.mean([len(e.ids) for e in tok.encode_batch(list(texts))]))


#: ONNX Runtime's idle threads spin between runs here: this process does nothing but inference,
#: the setting's best case (the worker and API default to off; see InferenceSettings.spin).
SPIN = True
#: Passes over the texts per measurement; the median one is reported (--repeat).
REPEAT = 3

# The predictor method each model kind is timed with.
RUNS = {"classifier": "classify", "ner": "entities", "multitask": "classify_and_tag"}


def bench_naive(
    kind: str, artifact: Path, texts: list[str], naive_limit: int, repeat: int
) -> Result:
    """The transformers pipeline of a classifier or NER artifact, one text per call."""
    from training.artifact import artifact_pipeline

    if kind == "classifier":
        pipe: Any = artifact_pipeline(artifact, device="cpu")
    else:
        pipe = artifact_pipeline(artifact, device="cpu", aggregation_strategy="first")
    naive_texts = texts[:naive_limit] if naive_limit > 0 else texts
    console.print(f"[bold]{kind}[/]: naive pipeline, one text per call ({len(naive_texts)} texts)")
    kwargs = {"truncation": True} if kind == "classifier" else {}
    times = timed_batches(lambda chunk: pipe(chunk[0], **kwargs), naive_texts, 1, repeat)
    return summarize(kind, "naive pipeline", 1, len(naive_texts), times)


def bench_two_models(
    classifier: Path,
    ner: Path,
    texts: list[str],
    batches: Sequence[int],
    threads: int,
    repeat: int,
    concurrency: int,
) -> list[Result]:
    """What a classify-and-tag artifact replaces: ONNX int8 classify, then entities, per batch."""
    from inference import InferenceSettings, load_predictor

    results = []
    for batch in batches:
        settings = InferenceSettings.model_validate(
            {
                "backend": "onnx",
                "precision": "int8",
                "threads": threads,
                "max_batch": batch,
                "spin": SPIN,
                "concurrency": concurrency,
            }
        )
        clf, tagger = load_predictor(classifier, settings), load_predictor(ner, settings)
        console.print(f"[bold]classifier+ner[/]: ONNX int8, two models, batch {batch}")

        def both(chunk: list[str], c: Any = clf, t: Any = tagger) -> object:
            return c.classify(chunk), t.entities(chunk)

        times = timed_batches(both, texts, batch, repeat)
        results.append(
            summarize("classifier+ner", "ONNX int8 (two passes)", batch, len(texts), times)
        )
    return results


ONNX_ENGINES = [("onnx", "fp32", "ONNX fp32"), ("onnx", "int8", "ONNX int8")]
TORCH_ENGINES = [("torch", "fp32", "PyTorch fp32")]


def bench_engines(
    kind: str,
    artifact: Path,
    texts: list[str],
    batches: Sequence[int],
    threads: int,
    repeat: int,
    engines: Sequence[tuple[str, str, str]],
    concurrency: int = 0,
) -> list[Result]:
    """The predictor on each (backend, precision) engine and batch size."""
    from inference import InferenceSettings, load_predictor

    results: list[Result] = []
    for backend, precision, label in engines:
        for batch in batches:
            settings = InferenceSettings.model_validate(
                {
                    "backend": backend,
                    "precision": precision,
                    "threads": threads,
                    "max_batch": batch,
                    "spin": SPIN,
                    "concurrency": concurrency,
                }
            )
            predictor = load_predictor(artifact, settings)
            run = getattr(predictor, RUNS[kind])
            console.print(f"[bold]{kind}[/]: {label}, batch {batch}")
            times = timed_batches(run, texts, batch, repeat)
            results.append(summarize(kind, label, batch, len(texts), times))
    return results


def bench_torch(
    kind: str,
    artifact: Path,
    texts: list[str],
    batches: Sequence[int],
    threads: int,
    naive_limit: int,
    repeat: int,
) -> list[Result]:
    """The naive pipeline (classifier, NER), then the predictor on PyTorch."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    results: list[Result] = []
    if kind != "multitask":  # no transformers pipeline reads a classify-and-tag head
        results.append(bench_naive(kind, artifact, texts, naive_limit, repeat))
    return results + bench_engines(kind, artifact, texts, batches, threads, repeat, TORCH_ENGINES)


def accuracy(artifact: Path, texts: list[str], labels: list[int], threads: int) -> dict[str, float]:
    from inference import InferenceSettings, load_predictor

    scores = {}
    for precision in ("fp32", "int8"):
        settings = InferenceSettings.model_validate(
            {"backend": "onnx", "precision": precision, "threads": threads}
        )
        predictor = load_predictor(artifact, settings)
        names = predictor.manifest.labels
        hits = 0
        for start in range(0, len(texts), 64):
            for out, gold in zip(
                predictor.classify(texts[start : start + 64]),
                labels[start : start + 64],
                strict=True,
            ):
                hits += int(getattr(out, "label", None) == names[gold])
        scores[f"onnx_{precision}"] = hits / len(texts)
    return scores


def table(results: Sequence[Result], bounds: dict[str, float]) -> Table:
    out = Table(title="textroute inference benchmark")
    for col in ("model", "engine", "batch", "texts/s", "p50 ms", "p99 ms", "x naive", "of bound"):
        out.add_column(col, justify="left" if col in ("model", "engine") else "right")
    for r in results:
        out.add_row(
            r.model,
            r.engine,
            str(r.batch),
            f"{r.texts_per_s:.1f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.speedup_vs_naive:.1f}x" if r.speedup_vs_naive else "",
            f"{r.fraction_of_bound:.0%}" if r.fraction_of_bound else "",
        )
    out.caption = "; ".join(f"{k} bound {v:.0f} texts/s" for k, v in bounds.items())
    if "multitask" in bounds:
        out.caption += "; multitask x naive: against both naive pipelines in turn"
    return out


def plot(path: Path, results: Sequence[Result], threads: int) -> Path:
    """Texts/s against batch size, one line per model and engine measured."""
    from plots import throughput_vs_batch

    curves: dict[str, list[tuple[int, float]]] = {}
    for r in results:
        curves.setdefault(f"{r.model}, {r.engine}", []).append((r.batch, r.texts_per_s))
    caption = f"{os.cpu_count()} CPUs, threads: {threads}; {platform.processor() or 'cpu'}"
    return throughput_vs_batch(path, curves, caption=caption)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifier", type=Path, help="Exported classifier artifact.")
    parser.add_argument("--ner", type=Path, help="Exported NER artifact (optional).")
    parser.add_argument(
        "--multitask", type=Path, help="Exported classify-and-tag artifact (optional)."
    )
    parser.add_argument("--smoke-dir", type=Path, help="Build untrained MiniLM artifacts here.")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="AG News test.csv.")
    parser.add_argument(
        "--text-column", default="description", help="Column(s), comma-separated: title,description"
    )
    parser.add_argument("--limit", type=int, default=1000, help="Texts to time; 0 = all.")
    parser.add_argument("--naive-limit", type=int, default=0, help="Texts for the naive run.")
    parser.add_argument("--batches", default="1,8,32", help="Batch sizes, comma-separated.")
    parser.add_argument("--threads", type=int, default=0, help="0 = all cores.")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=0,
        help="ONNX buckets run side by side (TEXTROUTE_INFERENCE_CONCURRENCY); 0 = one per core.",
    )
    parser.add_argument(
        "--repeat", type=int, default=REPEAT, help="Passes per measurement; the median is kept."
    )
    parser.add_argument("--accuracy", action="store_true", help="Score ONNX fp32 vs int8.")
    parser.add_argument("--accuracy-limit", type=int, default=0, help="Rows scored; 0 = all.")
    parser.add_argument("--skip-speed", action="store_true", help="Only the accuracy check.")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    parser.add_argument(
        "--plot",
        type=Path,
        help="Write a PNG of texts/s against batch size here (a bare name: under bench/plots/).",
    )
    args = parser.parse_args(argv)

    classifier, ner, multitask = args.classifier, args.ner, args.multitask
    if args.smoke_dir is not None:
        classifier, ner, multitask = build_smoke_artifacts(args.smoke_dir)
    if classifier is None:
        parser.error("give --classifier DIR (and --ner DIR) or --smoke-dir DIR")
    texts, _ = load_texts(args.data, args.text_column, args.limit)
    batches = [int(b) for b in args.batches.split(",")]
    threads = args.threads or (os.cpu_count() or 1)

    rate = int8_matmul_rate(threads)
    console.print(f"int8 matmul rate (ONNX Runtime, {threads} threads): {rate / 1e9:.1f} GOPS")
    results: list[Result] = []
    bounds: dict[str, float] = {}
    compute: dict[str, dict[str, float]] = {}
    kinds = [
        (kind, artifact)
        for kind, artifact in (("classifier", classifier), ("ner", ner), ("multitask", multitask))
        if artifact is not None and not args.skip_speed
    ]
    measured: dict[str, list[Result]] = {}
    for kind, artifact in kinds:
        config = json.loads((artifact / "config.json").read_text())
        manifest = json.loads((artifact / "manifest.json").read_text())
        tokens = mean_tokens(artifact, texts, manifest["max_length"])
        per_token = flops_per_token(config, tokens)
        bounds[kind] = rate / (per_token * tokens)
        compute[kind] = {
            "tokens_per_text": tokens,
            "flops_per_token": per_token,
            "bound_texts_per_s": bounds[kind],
        }
        console.print(
            f"{kind}: {tokens:.1f} tokens/text x {per_token / 1e6:.1f} MFLOP/token "
            f"-> compute bound {bounds[kind]:.0f} texts/s"
        )
        measured[kind] = bench_engines(
            kind,
            artifact,
            texts,
            batches,
            args.threads,
            args.repeat,
            ONNX_ENGINES,
            args.concurrency,
        )
        if kind == "multitask" and classifier is not None and ner is not None:
            measured[kind] += bench_two_models(
                classifier, ner, texts, batches, args.threads, args.repeat, args.concurrency
            )
    # PyTorch after every ONNX run: once its OpenMP threads had worked in this process, ONNX
    # Runtime ran about 10% slower in a quick check (bench/RESULTS.md, "Inference speed
    # (`bench/inference_speed.py`)").
    for kind, artifact in kinds:
        measured[kind] = (
            bench_torch(kind, artifact, texts, batches, args.threads, args.naive_limit, args.repeat)
            + measured[kind]
        )
    naive_rates = {k: measured[k][0].texts_per_s for k, _ in kinds if k != "multitask"}
    for kind, _ in kinds:
        model_results = measured[kind]
        # One text through both naive pipelines is what a classify-and-tag pass replaces.
        naive = (
            naive_rates.get(kind)
            if kind != "multitask"
            else (
                1.0 / sum(1.0 / r for r in naive_rates.values()) if len(naive_rates) == 2 else None
            )
        )
        for r in model_results:
            r.speedup_vs_naive = r.texts_per_s / naive if naive else None
            r.fraction_of_bound = r.texts_per_s / bounds[kind]
        results += model_results
    if results:
        console.print(table(results, bounds))
    if args.plot is not None and results:
        console.print(f"plot: {plot(args.plot, results, threads)}")

    scores: dict[str, float] = {}
    if args.accuracy:
        acc_texts, acc_labels = load_texts(args.data, args.text_column, args.accuracy_limit)
        scores = accuracy(classifier, acc_texts, acc_labels, args.threads)
        drop = 100 * (scores["onnx_fp32"] - scores["onnx_int8"])
        console.print(
            f"accuracy on {len(acc_texts)} texts: fp32 {scores['onnx_fp32']:.4f}, "
            f"int8 {scores['onnx_int8']:.4f} (drop {drop:.2f} points)"
        )
    if args.json is not None:
        import onnxruntime
        import torch

        payload = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": {
                "cpus": os.cpu_count(),
                "processor": platform.processor(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
            },
            "texts": len(texts),
            "int8_matmul_ops_per_s": rate,
            "compute": compute,
            "results": [asdict(r) for r in results],
            "accuracy": scores,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
