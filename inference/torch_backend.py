"""The PyTorch backend: the artifact's safetensors model on CUDA (fp16/bf16) or CPU."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inference.errors import ModelLoadFailedError
from schemas import Pooling, TaskKind

_AUTO_CLASS = {
    TaskKind.CLASSIFICATION: "AutoModelForSequenceClassification",
    TaskKind.PAIR_CLASSIFICATION: "AutoModelForSequenceClassification",
    TaskKind.TOKEN_CLASSIFICATION: "AutoModelForTokenClassification",
    TaskKind.QUESTION_ANSWERING: "AutoModelForQuestionAnswering",
    TaskKind.CLASSIFY_AND_TAG: "AutoModelForTokenClassification",
}
_OUTPUTS = {TaskKind.QUESTION_ANSWERING: ("start_logits", "end_logits")}


class TorchBackend:
    """Runs the Hugging Face model; torch and transformers are imported only when built."""

    def __init__(
        self,
        artifact_dir: Path,
        task: TaskKind,
        *,
        name: str,
        device: str = "cpu",
        precision: str = "fp32",
        threads: int = 0,
        pooling: Pooling = "cls",
    ) -> None:
        import torch
        import transformers

        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        mean = pooling == "mean"  # a token-classification model read as a sequence classifier
        auto = getattr(
            transformers, "AutoModelForTokenClassification" if mean else _AUTO_CLASS[task]
        )
        try:
            model: Any = auto.from_pretrained(artifact_dir, dtype=dtype)
        except Exception as exc:  # transformers raises OSError/ValueError/safetensors errors
            raise ModelLoadFailedError(
                f"PyTorch cannot load the model in {artifact_dir}: {exc}"
            ) from exc
        if mean:
            from inference.pooling import mean_pooled

            model = mean_pooled(model)
        self._model = model.to(device).eval()
        self._device = device
        self._torch = torch
        self._accepted = set(inspect.signature(model.forward).parameters)
        self.name = name
        self.output_names = list(_OUTPUTS.get(task, ("logits",)))

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        torch = self._torch
        tensors = {
            k: torch.from_numpy(np.ascontiguousarray(v)).to(self._device)
            for k, v in inputs.items()
            if k in self._accepted
        }
        with torch.inference_mode():
            out = self._model(**tensors)
        return {name: out[name].float().cpu().numpy() for name in self.output_names}
