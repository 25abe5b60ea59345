"""The ONNX Runtime backend: a CPU session over the artifact's fp32 or int8 graph (or, when a
caller names them, a session on other execution providers, e.g. CUDA)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np

from inference.errors import ModelLoadFailedError

if TYPE_CHECKING:
    import onnxruntime as ort

#: ONNX Runtime fusions left out at session load. Measured on MiniLM int8 (bench/onnx_profile.py;
#: bench/RESULTS.md, "Kernels tried and left out"): its CPU SkipLayerNormalization
#: kernel took 19% of a batch and BiasGelu 9%, where LayerNormalization and Gelu take 3% and 7%.
SLOW_FUSIONS = ("SkipLayerNormFusion", "BiasGeluFusion")

#: An execution provider as ONNX Runtime takes it: its name, or (name, provider options).
Provider: TypeAlias = str | tuple[str, dict[str, Any]]


def session_options(*, threads: int = 0, spin: bool = False) -> ort.SessionOptions:
    """Session options for one graph serving one request at a time on CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # One graph, one request at a time: all threads go to the matmuls inside each op.
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning threads answer the next run fastest but hold the cores while idle.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return options


def cpu_session(
    path: Path, *, threads: int = 0, spin: bool = False, save_optimized: Path | None = None
) -> ort.InferenceSession:
    """An ONNX Runtime CPU session with the options and fusions the stream serves with;
    `save_optimized` writes the graph as ONNX Runtime optimized it at load (for inspection)."""
    import onnxruntime as ort

    options = session_options(threads=threads, spin=spin)
    if save_optimized is not None:
        options.optimized_model_filepath = str(save_optimized)
    return ort.InferenceSession(
        str(path),
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=list(SLOW_FUSIONS),
    )


#: The process's CPU sessions by graph file (path, size, mtime) and options: a graph that two
#: predictors serve (two pipelines, two roles of one artifact, the API and the worker in one
#: process) is loaded once. Weak values: a session goes when its last backend does (a hot
#: reload to a new version frees the old graph).
_SESSIONS: weakref.WeakValueDictionary[tuple[str, int, int, int, bool], ort.InferenceSession] = (
    weakref.WeakValueDictionary()
)
_SESSIONS_LOCK = threading.Lock()


def shared_cpu_session(path: Path, *, threads: int = 0, spin: bool = False) -> ort.InferenceSession:
    """The process's CPU session of the graph at `path` (see _SESSIONS), loaded on first use.
    ONNX Runtime runs concurrent `run` calls on one session safely, so callers share it."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, threads, spin)
    with _SESSIONS_LOCK:
        session = _SESSIONS.get(key)
        if session is None:
            session = cpu_session(path, threads=threads, spin=spin)
            _SESSIONS[key] = session
        return session


def loaded_graphs() -> int:
    """ONNX graphs this process holds a CPU session of (each once; see shared_cpu_session)."""
    with _SESSIONS_LOCK:
        return len(_SESSIONS)


def provider_name(provider: Provider) -> str:
    return provider if isinstance(provider, str) else provider[0]


def provider_session(
    path: Path, providers: Sequence[Provider], *, threads: int = 0, spin: bool = False
) -> ort.InferenceSession:
    """An ONNX Runtime session on `providers`, in order (e.g. CUDA, then CPU for any op CUDA
    lacks), with the CPU session's options. Every fusion is kept: SLOW_FUSIONS were measured
    slow on the CPU kernels only. Raises RuntimeError when the first provider named is not the
    one the session runs on: ONNX Runtime falls back to CPU silently when a provider (or the
    libraries it needs) is missing, which would pass CPU figures off as GPU ones."""
    import onnxruntime as ort

    if not providers:
        raise ValueError("name at least one execution provider")
    session = ort.InferenceSession(
        str(path), session_options(threads=threads, spin=spin), providers=list(providers)
    )
    wanted = provider_name(providers[0])
    if wanted not in session.get_providers():
        raise RuntimeError(
            f"ONNX Runtime did not start {wanted} (the session runs on "
            f"{', '.join(session.get_providers())}; this onnxruntime offers "
            f"{', '.join(ort.get_available_providers())})"
        )
    return session


class OnnxBackend:
    """Runs an ONNX graph with ONNX Runtime, on CPU unless `providers` names others (see
    provider_session); feeds only the inputs the graph declares."""

    def __init__(
        self,
        path: Path,
        *,
        name: str,
        threads: int = 0,
        spin: bool = False,
        providers: Sequence[Provider] | None = None,
    ) -> None:
        if providers is not None:
            try:
                self._session = provider_session(path, providers, threads=threads, spin=spin)
            except Exception as exc:  # a provider that cannot start, or the graph itself
                raise ModelLoadFailedError(
                    f"ONNX Runtime cannot load {path} on "
                    f"{', '.join(provider_name(p) for p in providers)}: {exc}"
                ) from exc
        else:
            try:
                self._session = shared_cpu_session(path, threads=threads, spin=spin)
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
                raise ModelLoadFailedError(
                    f"ONNX Runtime cannot load {path}: {exc}; "
                    f"re-run `textroute export {path.parent}`"
                ) from exc
        self.name = name
        self.providers: list[str] = list(self._session.get_providers())
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        feeds = {name: inputs[name] for name in self.input_names}
        values = self._session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))
