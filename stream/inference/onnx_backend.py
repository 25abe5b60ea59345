"""The ONNX Runtime backend: a CPU session over the artifact's fp32 or int8 graph."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from stream.inference.errors import ModelLoadFailedError


class OnnxBackend:
    """Runs an ONNX graph with ONNX Runtime on CPU; feeds only the inputs the graph declares."""

    def __init__(self, path: Path, *, name: str, threads: int = 0, spin: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # One graph, one request at a time: all threads go to the matmuls inside each op.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning threads answer the next run fastest but hold the cores while idle.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise ModelLoadFailedError(
                f"ONNX Runtime cannot load {path}: {exc}; re-run `textroute export {path.parent}`"
            ) from exc
        self.name = name
        self.input_names = [i.name for i in self._session.get_inputs()]
        self.output_names = [o.name for o in self._session.get_outputs()]

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        feeds = {name: inputs[name] for name in self.input_names}
        values = self._session.run(self.output_names, feeds)
        return dict(zip(self.output_names, values, strict=True))
