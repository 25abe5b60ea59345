"""`load_predictor`: verify an artifact directory and build the predictor of its task."""

from __future__ import annotations

import json
import os
from pathlib import Path

import structlog

from inference._encoding import MAX_PAD_RATIO, TextEncoder
from inference.backend import Backend, BackendPlan, plan_backend
from inference.errors import OnnxFileMissingError, TokenizerMissingError
from inference.lexical import load_lexical
from inference.multitask import MultiTaskPredictor
from inference.predictor import Predictor
from inference.settings import InferenceSettings
from schemas import FileRole, ModelManifest, TaskKind
from schemas.artifact import read_manifest

log = structlog.get_logger(__name__)


def _max_length(root: Path, manifest: ModelManifest) -> int:
    """The manifest's max_length, capped by the encoder's position table if config.json says."""
    config = root / "config.json"
    if config.is_file():
        positions = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
        if isinstance(positions, int) and positions > 0:
            return min(manifest.max_length, positions)
    return manifest.max_length


def _parallelism(settings: InferenceSettings, plan: BackendPlan) -> tuple[int, int]:
    """(buckets run at once, intra-op threads of the session): ONNX Runtime on CPU runs a
    call's length buckets side by side on the graph's one session, each run with its share of
    the thread budget (a lone text too: a session of every thread would oversubscribe the
    cores whenever two runs overlap, measured slower in the worker); PyTorch runs one bucket
    at a time with every thread."""
    if plan.kind != "onnx":
        return 1, settings.threads
    cores = os.cpu_count() or 1
    budget = settings.threads or cores
    runs = settings.concurrency or min(cores, budget)
    return runs, max(1, budget // runs)


def bucket_pad_ratio(settings: InferenceSettings, plan: BackendPlan) -> float | None:
    """How much longer than its shortest text a backend call's texts may be: as set, else
    bounded on CPU (padding costs compute there) and open on a GPU (one call costs less)."""
    if settings.bucket_pad_ratio is not None:
        return settings.bucket_pad_ratio
    return None if plan.device == "cuda" else MAX_PAD_RATIO


def _build_backend(
    root: Path, manifest: ModelManifest, plan: BackendPlan, threads: int, *, spin: bool = False
) -> Backend:
    if plan.kind == "torch":
        from inference.torch_backend import TorchBackend

        return TorchBackend(
            root,
            manifest.task,
            name=plan.name,
            device=plan.device,
            precision=plan.precision,
            threads=threads,
            pooling=manifest.pooling,
        )
    from inference.onnx_backend import OnnxBackend

    role = FileRole.ONNX_INT8 if plan.precision == "int8" else FileRole.ONNX_FP32
    entry = manifest.file_for(role)
    if entry is None:
        raise OnnxFileMissingError(
            f"artifact {root} has no {role.value} model; run `textroute export {root}` "
            "to add the ONNX files, or set TEXTROUTE_INFERENCE_BACKEND=torch"
        )
    return OnnxBackend(root / entry.path, name=plan.name, threads=threads, spin=spin)


def load_predictor(
    artifact_dir: Path | str, settings: InferenceSettings | None = None
) -> Predictor | MultiTaskPredictor:
    """Verify the artifact's checksums, pick the backend, build the predictor (a
    MultiTaskPredictor for a classify-and-tag artifact, a Predictor otherwise).

    Raises an ArtifactError subclass for a missing, corrupt or incomplete artifact (no ONNX
    file for the ONNX backend: run `textroute export DIR`), InferenceConfigError for settings
    this machine cannot honour.
    """
    settings = settings if settings is not None else InferenceSettings()
    root = Path(artifact_dir)
    manifest = read_manifest(root, verify=True)
    tokenizer_json = root / "tokenizer.json"
    if not any(f.path == "tokenizer.json" for f in manifest.files) or not tokenizer_json.is_file():
        raise TokenizerMissingError(
            f"artifact {root} has no tokenizer.json (fast tokenizer) in its manifest; "
            "re-save the model with a fast tokenizer"
        )
    lexical = (
        load_lexical(root, manifest)
        if manifest.task
        in (TaskKind.CLASSIFICATION, TaskKind.CLASSIFY_AND_TAG, TaskKind.MULTI_LABEL)
        else None
    )
    plan = plan_backend(settings)
    concurrency, threads = _parallelism(settings, plan)
    backend = _build_backend(root, manifest, plan, threads, spin=settings.spin)
    encoder = TextEncoder(tokenizer_json, _max_length(root, manifest), stride=settings.chunk_stride)
    pad_ratio = bucket_pad_ratio(settings, plan)
    log.info(
        "inference.loaded",
        model=manifest.name,
        version=manifest.version,
        task=manifest.task.value,
        backend=backend.name,
    )
    if manifest.task is TaskKind.CLASSIFY_AND_TAG:
        return MultiTaskPredictor(
            manifest,
            backend,
            encoder,
            settings,
            concurrency=concurrency,
            lexical=lexical,
            pad_ratio=pad_ratio,
        )
    return Predictor(
        manifest,
        backend,
        encoder,
        settings,
        concurrency=concurrency,
        lexical=lexical,
        pad_ratio=pad_ratio,
    )
