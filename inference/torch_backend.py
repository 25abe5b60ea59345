"""The PyTorch backend: the artifact's safetensors model on CUDA (fp16/bf16) or CPU."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from inference.errors import ModelLoadFailedError
from schemas import Pooling, TaskKind

#: The transformers Auto class that loads each task's weights, by name: transformers is imported
#: only when a model is built, so a serving install without it can still import this module.
AUTO_MODEL_CLASSES: Mapping[TaskKind, str] = MappingProxyType(
    {
        TaskKind.CLASSIFICATION: "AutoModelForSequenceClassification",
        TaskKind.PAIR_CLASSIFICATION: "AutoModelForSequenceClassification",
        TaskKind.TOKEN_CLASSIFICATION: "AutoModelForTokenClassification",
        TaskKind.QUESTION_ANSWERING: "AutoModelForQuestionAnswering",
        TaskKind.CLASSIFY_AND_TAG: "AutoModelForTokenClassification",
        # One logit per label like a classifier's; the sigmoid is applied when they are read.
        TaskKind.MULTI_LABEL: "AutoModelForSequenceClassification",
    }
)
_OUTPUTS = {TaskKind.QUESTION_ANSWERING: ("start_logits", "end_logits")}


def auto_model_class(task: TaskKind, pooling: Pooling = "cls") -> Any:
    """The transformers Auto class that builds or loads a model of `task`. A mean-pooled
    classifier is a token-classification model (`mean_pooled` averages its per-token logits),
    so that is the class its weights load with."""
    import transformers

    name = "AutoModelForTokenClassification" if pooling == "mean" else AUTO_MODEL_CLASSES[task]
    return getattr(transformers, name)


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

        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        if threads and device == "cpu":
            torch.set_num_threads(threads)
        auto = auto_model_class(task, pooling)
        try:
            model: Any = auto.from_pretrained(artifact_dir, dtype=dtype)
        except Exception as exc:  # transformers raises OSError/ValueError/safetensors errors
            raise ModelLoadFailedError(
                f"PyTorch cannot load the model in {artifact_dir}: {exc}"
            ) from exc
        if pooling == "mean":  # a token-classification model read as a sequence classifier
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
