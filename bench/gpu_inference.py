"""GPU inference benchmark: a classifier artifact's bare throughput on PyTorch and ONNX Runtime.

Measures, on the same texts (AG News test descriptions when found, else generated sentences of
news length), texts/s and p50/p99 call latency of the textroute predictor at each batch size on:

- PyTorch fp32, fp16 and bf16: the product path, `inference.load_predictor` with
  InferenceSettings(backend="torch", precision=...), on CUDA when PyTorch sees a GPU;
- ONNX Runtime's CUDAExecutionProvider on the artifact's fp32 model.onnx, and its
  TensorrtExecutionProvider (fp16 engines) when the installed onnxruntime has them: the
  predictor load_predictor builds for ONNX fp32, its backend swapped for an OnnxBackend on that
  provider (load_predictor has no provider setting; the tokenizing, bucketing and decoding
  around the backend are the product's);
- ONNX Runtime on CPU (fp32, int8) when asked with --engines, or on a machine without a GPU.

With `--device cpu`, or `auto` on a machine where PyTorch sees no CUDA device, the same code runs
on CPU (any GPU is hidden from PyTorch) and says that no GPU was measured: that run proves the
plumbing, its figures say nothing about GPU speed. An engine that cannot run here (fp16 on CPU, a
provider this onnxruntime lacks) is skipped with its reason, in the table and the JSON.

    python bench/gpu_inference.py --classifier DIR --json gpu.json              # on a GPU machine
    python bench/gpu_inference.py --classifier DIR --device cpu --batches 4,8 --texts 32
    python bench/gpu_inference.py --build-minilm OUT [--base DIR]    # MiniLM-L6 classifier + NER
    python bench/gpu_inference.py --versions              # torch, CUDA, GPU, onnxruntime providers

--build-minilm builds MiniLM-L6-shaped classifier and NER artifacts, exported to ONNX: with the
base model's weights when --base (default: the offline MiniLM package) holds them, else randomly
initialised from its config.json and tokenizer alone; untrained heads either way, which is right
for speed and wrong for accuracy. bench/gpu_check.sh runs all of this on a lent GPU machine.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
DATA_CANDIDATES = (
    REPO / ".gpu" / "ag_news_test.csv",
    REPO / "shared" / "data" / "ag_news" / "test.csv",
    REPO.parent / "shared" / "data" / "ag_news" / "test.csv",
)
console = Console(width=120)

#: Engine id -> (runtime, precision). torch-* go through load_predictor; ort-* are ONNX Runtime.
ENGINES: dict[str, tuple[str, str]] = {
    "torch-fp32": ("torch", "fp32"),
    "torch-fp16": ("torch", "fp16"),
    "torch-bf16": ("torch", "bf16"),
    "ort-cuda-fp32": ("CUDAExecutionProvider", "fp32"),
    "ort-trt-fp16": ("TensorrtExecutionProvider", "fp16"),
    "ort-cpu-fp32": ("onnx", "fp32"),
    "ort-cpu-int8": ("onnx", "int8"),
    # The provider path (a swapped-in OnnxBackend) on ONNX Runtime's CPU provider: checks that
    # path on any machine.
    "ort-cpu-ep-fp32": ("CPUExecutionProvider", "fp32"),
}
GPU_ENGINES = ("torch-fp32", "torch-fp16", "torch-bf16", "ort-cuda-fp32", "ort-trt-fp16")
#: Without a GPU the GPU engines are still tried (and skipped with their reason where they
#: cannot run) beside the CPU reference.
CPU_ENGINES = (*GPU_ENGINES, "ort-cpu-fp32")
NO_GPU = (
    "NO GPU: PyTorch sees no CUDA device here (or --device cpu): everything below ran on CPU. "
    "These figures prove the plumbing; they say nothing about GPU speed."
)

# Words for generated texts when no AG News file is found: news-like sentences of 20-60 words.
_NEWS = (
    "the government said on monday that its economy grew faster than expected in the third "
    "quarter as exports rose and company profits beat forecasts while shares of technology "
    "firms fell after the central bank raised interest rates again the team won its fourth "
    "straight game behind a late goal from its captain scientists announced a new space "
    "mission to study the climate of mars officials in london and new york reported strong "
    "sales of software and mobile phones during the holiday season"
)
_WORDS = _NEWS.split()


@dataclass
class Result:
    engine: str
    backend: str
    device: str
    batch: int
    texts: int
    seconds: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    peak_gpu_mb: float | None = None


@dataclass
class Report:
    device: str
    gpu_found: bool
    note: str
    artifact: str
    model: str
    text_source: str
    texts: int
    batches: list[int]
    repeat: int
    versions: dict[str, Any]
    results: list[Result] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    #: engine -> agreement with ONNX Runtime fp32 on CPU (the export's reference) on the first
    #: PARITY_TEXTS texts: same top label, largest top-k score difference.
    parity: dict[str, dict[str, float]] = field(default_factory=dict)


# ---- inputs ---------------------------------------------------------------------------------


def load_texts(path: Path | None, n: int, seed: int = 0) -> tuple[list[str], str]:
    """`n` texts: AG News test descriptions from `path` (or the first file of DATA_CANDIDATES
    found), repeated if the file is shorter; else generated sentences. Returns (texts, source)."""
    found = path if path is not None else next((p for p in DATA_CANDIDATES if p.is_file()), None)
    if found is not None and found.is_file():
        with found.open(encoding="utf-8", newline="") as fh:
            rows = [" ".join(r["description"].split()) for r in csv.DictReader(fh)]
        rows = [r for r in rows if r]
        if rows:
            return [rows[i % len(rows)] for i in range(n)], f"ag_news ({found})"
    rng = random.Random(seed)
    texts = [" ".join(rng.choices(_WORDS, k=rng.randint(20, 60))) + "." for _ in range(n)]
    return texts, "generated (no AG News test.csv found)"


# ---- environment ----------------------------------------------------------------------------


def versions() -> dict[str, Any]:
    """Python, PyTorch (and its CUDA), the GPU, transformers, ONNX Runtime and its providers."""
    out: dict[str, Any] = {"python": platform.python_version(), "machine": platform.platform()}
    out["cpus"] = os.cpu_count()
    try:
        import torch

        out["torch"] = torch.__version__
        out["torch_cuda"] = torch.version.cuda
        out["cuda_available"] = bool(torch.cuda.is_available())
        if out["cuda_available"]:
            out["gpu"] = torch.cuda.get_device_name(0)
            out["gpu_capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
            out["bf16_supported"] = bool(torch.cuda.is_bf16_supported())
    except ImportError as exc:
        out["torch"] = f"not importable: {exc}"
    try:
        import transformers

        out["transformers"] = transformers.__version__
    except ImportError as exc:
        out["transformers"] = f"not importable: {exc}"
    try:
        import onnxruntime as ort

        out["onnxruntime"] = ort.__version__
        out["onnxruntime_device"] = ort.get_device()
        out["onnxruntime_providers"] = list(ort.get_available_providers())
    except ImportError as exc:
        out["onnxruntime"] = f"not importable: {exc}"
    return out


def resolve_device(asked: str) -> str:
    """'cuda' or 'cpu'. For 'cpu' this hides every GPU from PyTorch (before torch is imported),
    so the product path, which picks CUDA whenever it sees it, runs on CPU."""
    if asked == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
        return "cpu"
    from inference.backend import cuda_available

    if cuda_available():
        return "cuda"
    if asked == "cuda":
        raise SystemExit("--device cuda: PyTorch sees no CUDA device on this machine")
    return "cpu"


# ---- engines --------------------------------------------------------------------------------

Run = Callable[[list[str]], Sequence[object]]


def torch_engine(artifact: Path, precision: str, max_batch: int, threads: int) -> Any:
    """The product path: load_predictor on the torch backend at `precision`."""
    from inference import InferenceSettings, load_predictor

    settings = InferenceSettings.model_validate(
        {"backend": "torch", "precision": precision, "max_batch": max_batch, "threads": threads}
    )
    return load_predictor(artifact, settings)


def onnx_engine(
    artifact: Path, precision: str, max_batch: int, threads: int, provider: str | None
) -> Any:
    """The ONNX predictor of load_predictor (one bucket at a time); with `provider`, its backend
    replaced by an OnnxBackend on that execution provider over the fp32 graph."""
    from inference import InferenceSettings, load_predictor
    from inference.onnx_backend import OnnxBackend

    if provider is not None:
        import onnxruntime as ort

        if provider not in ort.get_available_providers():
            raise EngineSkipped(
                f"onnxruntime {ort.__version__} has no {provider} (it offers "
                f"{', '.join(ort.get_available_providers())}); onnxruntime-gpu has it"
            )
    settings = InferenceSettings.model_validate(
        {
            "backend": "onnx",
            "precision": "int8" if precision == "int8" else "fp32",
            "max_batch": max_batch,
            "threads": threads,
            "concurrency": 1,
        }
    )
    predictor = load_predictor(artifact, settings)
    if provider is None:
        return predictor
    graph = artifact / "model.onnx"
    options: dict[str, Any] = {}
    if provider == "TensorrtExecutionProvider":
        assert isinstance(predictor.backend, OnnxBackend)
        options = trt_options(predictor.backend.input_names, max_batch, artifact)
    # CUDA (or TensorRT, then CUDA) with CPU for any op neither has.
    fallbacks = ["CUDAExecutionProvider"] if provider == "TensorrtExecutionProvider" else []
    chain: list[Any] = [(provider, options)]
    chain += [p for p in [*fallbacks, "CPUExecutionProvider"] if p != provider]
    short = provider.removesuffix("ExecutionProvider").lower()
    backend = OnnxBackend(graph, name=f"onnx-{short}-{precision}", providers=chain)
    predictor.backend = backend
    predictor.backend_name = backend.name
    return predictor


def trt_options(inputs: Sequence[str], max_batch: int, artifact: Path) -> dict[str, Any]:
    """TensorRT fp16, one engine for every shape up to (max_batch, max_length), cached on disk."""
    from schemas.artifact import read_manifest

    length = read_manifest(artifact, verify=False).max_length

    def shapes(b: int, t: int) -> str:
        return ",".join(f"{name}:{b}x{t}" for name in inputs)

    cache = Path(os.environ.get("TEXTROUTE_TRT_CACHE", "/tmp/textroute-trt-cache"))
    cache.mkdir(parents=True, exist_ok=True)
    return {
        "trt_fp16_enable": True,
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache),
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(max_batch, min(64, length)),
        "trt_profile_max_shapes": shapes(max_batch, length),
    }


class EngineSkipped(Exception):
    """This engine cannot run on this machine; the message says why."""


def build_engine(
    engine: str, artifact: Path, device: str, max_batch: int, threads: int
) -> tuple[Run, str]:
    """(classify, backend name) of an engine, or EngineSkipped with the reason."""
    from inference import InferenceConfigError

    runtime, precision = ENGINES[engine]
    if runtime == "torch":
        if precision == "fp16" and device != "cuda":
            raise EngineSkipped("fp16 needs a CUDA GPU")
        try:
            predictor = torch_engine(artifact, precision, max_batch, threads)
        except InferenceConfigError as exc:
            raise EngineSkipped(str(exc)) from exc
    elif runtime == "onnx":
        predictor = onnx_engine(artifact, precision, max_batch, threads, None)
    else:
        predictor = onnx_engine(artifact, precision, max_batch, threads, runtime)
    return predictor.classify, str(predictor.backend_name)


# ---- parity ---------------------------------------------------------------------------------

PARITY_TEXTS = 128


def reference(artifact: Path, texts: list[str], threads: int) -> list[Any] | None:
    """ONNX Runtime fp32 on CPU (the product path) on `texts`: what each engine is compared
    with. None (and no parity figures) when it cannot run."""
    try:
        predictor = onnx_engine(artifact, "fp32", 32, threads, None)
        return list(predictor.classify(texts))
    except Exception as exc:  # parity is a side figure: never fail the benchmark for it
        console.print(f"[yellow]no parity reference (ONNX fp32 on CPU): {exc!r}[/]")
        return None


def parity(outputs: Sequence[Any], expected: Sequence[Any]) -> dict[str, float]:
    """Top-label agreement and the largest |score| difference over the top-k labels both have.
    Untrained heads give near-uniform scores, where fp16/bf16 rounding flips labels easily:
    read the score difference first."""
    agree, diff, n = 0, 0.0, 0
    for got, want in zip(outputs, expected, strict=True):
        if not hasattr(got, "top_k") or not hasattr(want, "top_k"):
            continue  # an item error on either side
        n += 1
        agree += int(got.label == want.label)
        scores = {s.label: s.score for s in got.top_k}
        diff = max(
            [diff, *(abs(scores[s.label] - s.score) for s in want.top_k if s.label in scores)]
        )
    return {"texts": float(n), "label_agreement": agree / n if n else 0.0, "max_score_diff": diff}


# ---- timing ---------------------------------------------------------------------------------


def timed_calls(run: Run, texts: list[str], batch: int, repeat: int) -> list[float]:
    """Seconds per call of `run` on consecutive slices of `batch` texts, from the median of
    `repeat` passes, after three warm-up calls (the first calls allocate, and on a GPU its
    engines are made at first use). Every call returns host arrays, so it ends synchronized."""
    from timing import median_pass, timed_passes

    return median_pass(timed_passes(run, texts, batch, repeat, warmup_calls=3))


def summarize(
    engine: str, backend: str, device: str, batch: int, n: int, times: Sequence[float]
) -> Result:
    from timing import call_stats

    return Result(
        engine=engine, backend=backend, device=device, batch=batch, texts=n, **call_stats(n, times)
    )


def _gpu_memory(reset: bool) -> float | None:
    """Peak GPU memory PyTorch allocated since the last reset (weights included), in MiB; None
    without CUDA. `reset` starts a new measurement."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    if reset:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        return None
    torch.cuda.synchronize()
    return float(torch.cuda.max_memory_allocated()) / 2**20


def save(report: Report, path: Path | None) -> None:
    """Write the report as JSON (after each engine: a run cut short keeps what it measured)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(report), indent=2) + "\n", encoding="utf-8")


def measure(args: argparse.Namespace, device: str) -> Report:
    from schemas.artifact import read_manifest

    artifact: Path = args.classifier
    manifest = read_manifest(artifact, verify=False)
    texts, source = load_texts(args.data, args.texts)
    batches = sorted({int(b) for b in args.batches.split(",")})
    engines = (
        args.engines.split(",")
        if args.engines
        else list(GPU_ENGINES if device == "cuda" else CPU_ENGINES)
    )
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"unknown engine(s) {', '.join(unknown)}; known: {', '.join(ENGINES)}")
    report = Report(
        device=device,
        gpu_found=device == "cuda",
        note="" if device == "cuda" else NO_GPU,
        artifact=str(artifact),
        model=f"{manifest.name} {manifest.version} ({manifest.task.value})",
        text_source=source,
        texts=len(texts),
        batches=batches,
        repeat=args.repeat,
        versions=versions(),
    )
    if device != "cuda":
        console.print(f"[bold yellow]{NO_GPU}[/]")
    console.print(f"{len(texts)} texts, {source}; batches {batches}; engines {engines}")
    sample = texts[:PARITY_TEXTS]
    expected = reference(artifact, sample, args.threads)
    for engine in engines:
        try:
            run, backend = build_engine(engine, artifact, device, max(batches), args.threads)
        except EngineSkipped as exc:
            report.skipped[engine] = str(exc)
            console.print(f"[yellow]{engine}: skipped: {exc}[/]")
            save(report, args.json)
            continue
        except Exception as exc:  # any load failure: record it and go on with the others
            report.skipped[engine] = f"failed to load: {exc!r}"
            console.print(f"[red]{engine}: failed to load: {exc!r}[/]")
            save(report, args.json)
            continue
        engine_device = "cpu" if engine.startswith("ort-cpu") else device
        if expected is not None:
            try:
                report.parity[engine] = parity(run(sample), expected)
            except Exception as exc:  # the timing below shows the failure, if it is general
                console.print(f"[yellow]{engine}: parity check failed: {exc!r}[/]")
        for batch in batches:
            _gpu_memory(reset=True)
            try:
                times = timed_calls(run, texts, batch, args.repeat)
            except Exception as exc:  # a failing batch size: record it, try the next
                report.skipped[f"{engine}@{batch}"] = f"failed: {exc!r}"
                console.print(f"[red]{engine} batch {batch}: failed: {exc!r}[/]")
                continue
            result = summarize(engine, backend, engine_device, batch, len(texts), times)
            result.peak_gpu_mb = _gpu_memory(reset=False) if engine.startswith("torch") else None
            report.results.append(result)
            console.print(
                f"{engine} batch {batch}: {result.texts_per_s:.0f} texts/s, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms"
            )
        del run  # the predictor and its model go with it (GPU memory for the next engine)
        gc.collect()
        save(report, args.json)
    return report


def tables(report: Report) -> list[Table]:
    """The figures per engine and batch size; parity per engine; what was skipped and why."""
    out = Table(title=f"textroute inference on {report.device}: {report.model}")
    for col in ("engine", "backend", "batch", "texts/s", "p50 ms", "p99 ms", "peak GPU MiB"):
        out.add_column(col, justify="left" if col in ("engine", "backend") else "right")
    for r in report.results:
        out.add_row(
            r.engine,
            r.backend,
            str(r.batch),
            f"{r.texts_per_s:.0f}",
            f"{r.p50_ms:.1f}",
            f"{r.p99_ms:.1f}",
            f"{r.peak_gpu_mb:.0f}" if r.peak_gpu_mb is not None else "",
        )
    out.caption = report.note or None
    made = [out]
    if report.parity:
        agree = Table(title="against ONNX Runtime fp32 on CPU")
        for col in ("engine", "texts", "same label", "max score diff"):
            agree.add_column(col, justify="left" if col == "engine" else "right")
        for engine, figures in report.parity.items():
            agree.add_row(
                engine,
                f"{figures['texts']:.0f}",
                f"{figures['label_agreement']:.0%}",
                f"{figures['max_score_diff']:.2g}",
            )
        made.append(agree)
    if report.skipped:
        skipped = Table(title="skipped")
        skipped.add_column("engine")
        skipped.add_column("why")
        for engine, why in report.skipped.items():
            skipped.add_row(engine, why)
        made.append(skipped)
    return made


# ---- MiniLM-shaped artifacts ----------------------------------------------------------------

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def build_minilm(out: Path, base: Path | None, tasks: Sequence[str]) -> dict[str, Path]:
    """MiniLM-L6 classifier and/or NER artifacts (untrained heads) exported to ONNX fp32 + int8.

    `base` is a model directory with config.json and a tokenizer; with model.safetensors too its
    encoder weights are loaded, otherwise the encoder is randomly initialised from the config
    (the same shapes, hence the same speed). Default: the offline MiniLM package."""
    from transformers import (
        AutoConfig,
        AutoModelForSequenceClassification,
        AutoModelForTokenClassification,
        AutoTokenizer,
    )

    from schemas import ModelManifest, TaskKind
    from training.artifact import save_artifact
    from training.export import GateSettings, export_artifact

    if base is None:
        from training.models import offline_minilm_dir

        base = offline_minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(base)
    weights = (base / "model.safetensors").is_file()
    specs = {
        "classifier": (AutoModelForSequenceClassification, TaskKind.CLASSIFICATION, CLASSES),
        "ner": (AutoModelForTokenClassification, TaskKind.TOKEN_CLASSIFICATION, TAGS),
    }
    made = {}
    for name in tasks:
        auto, task, labels = specs[name]
        target = out / name
        if not (target / "model.onnx").is_file():
            label_args: dict[str, Any] = {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {lab: i for i, lab in enumerate(labels)},
            }
            if weights:
                model = auto.from_pretrained(base, **label_args)
            else:
                config = AutoConfig.from_pretrained(base, **label_args)
                model = auto.from_config(config)  # type: ignore[no-untyped-call]
            manifest = ModelManifest(
                name=f"minilm-{name}",
                version="gpu-check",
                task=task,
                labels=labels,
                base_model=f"{base} ({'weights' if weights else 'random init'})",
                max_length=128,
                text_columns=["description"],
            )
            save_artifact(target, model, tokenizer, manifest)
            export_artifact(target, gates=GateSettings(enabled=False), sample=32)
        made[name] = target
        console.print(f"{name}: {target} ({'base weights' if weights else 'random init'})")
    return made


# ---- main -----------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="engines: " + ", ".join(ENGINES),
    )
    p.add_argument("--classifier", type=Path, help="Exported classifier artifact to measure.")
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--batches", default="32,64,128,256,512", help="Batch sizes, comma-separated.")
    p.add_argument("--texts", type=int, default=4096, help="Texts per pass.")
    p.add_argument("--repeat", type=int, default=3, help="Passes; the median one is reported.")
    p.add_argument("--engines", default=None, help="Comma-separated; default: all for the device.")
    p.add_argument("--data", type=Path, default=None, help="AG News test.csv (else looked for).")
    p.add_argument("--threads", type=int, default=0, help="CPU threads; 0 = all cores.")
    p.add_argument("--json", type=Path, default=None, help="Write the figures here.")
    p.add_argument("--build-minilm", type=Path, default=None, metavar="OUT",
                   help="Build MiniLM-L6 artifacts under OUT (see --tasks) and exit.")  # fmt: skip
    p.add_argument("--base", type=Path, default=None, help="Base model dir for --build-minilm.")
    p.add_argument("--tasks", default="classifier,ner", help="Artifacts --build-minilm makes.")
    p.add_argument("--versions", action="store_true", help="Print (and --json) versions, exit.")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.versions:
        found = json.dumps(versions(), indent=2)
        console.print(found, markup=False, highlight=False)
        if args.json is not None:
            args.json.write_text(found + "\n", encoding="utf-8")
        return 0
    if args.build_minilm is not None:
        build_minilm(args.build_minilm, args.base, args.tasks.split(","))
        return 0
    if args.classifier is None:
        console.print("give --classifier DIR (an exported classifier artifact) or --build-minilm")
        return 2
    device = resolve_device(args.device)
    report = measure(args, device)
    for t in tables(report):
        console.print(t)
    if args.json is not None:
        save(report, args.json)
        console.print(f"wrote {args.json}")
    return 0 if report.results else 1


if __name__ == "__main__":
    sys.exit(main())
