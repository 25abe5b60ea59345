"""The backend protocol and the choice of backend and precision for this machine."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import structlog

from inference.errors import BackendUnavailableError, InferenceConfigError
from inference.settings import InferenceSettings, Precision

log = structlog.get_logger(__name__)


class Backend(Protocol):
    """Runs encoder + head on padded int64 arrays (input_ids, attention_mask, token_type_ids)
    and returns float32 outputs by name ("logits", or "start_logits"/"end_logits" for QA)."""

    name: str

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]: ...


@dataclass(frozen=True)
class BackendPlan:
    """What load_predictor builds: which runtime, which precision, on which device."""

    kind: Literal["onnx", "torch"]
    precision: Precision
    device: str = "cpu"

    @property
    def name(self) -> str:
        if self.kind == "onnx":
            return f"onnx-{self.precision}"
        return f"torch-{self.device}-{self.precision}"


#: The device nodes of the GPU drivers PyTorch's CUDA runs on under Linux: NVIDIA's, AMD's
#: (ROCm builds answer through torch.cuda too) and WSL2's GPU bridge.
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def cuda_available() -> bool:
    """True when PyTorch is installed and sees a CUDA device.

    torch is imported only when it could answer yes: it is installed and, on Linux, a GPU
    driver's device node exists (macOS has no CUDA). Importing it just to hear "no" costs
    about 200 MB resident and a second of start-up in every CPU worker of an install that
    has torch (the `[gpu]` extra, a development checkout).
    """
    if importlib.util.find_spec("torch") is None or sys.platform == "darwin":
        return False
    if sys.platform.startswith("linux") and not any(map(os.path.exists, GPU_DEVICE_NODES)):
        return False
    import torch

    return bool(torch.cuda.is_available())


def _cuda_bf16() -> bool:
    import torch

    return bool(torch.cuda.is_bf16_supported())


def plan_backend(settings: InferenceSettings, *, cuda: bool | None = None) -> BackendPlan:
    """Resolve `auto` and map the precision onto what the chosen backend runs.

    An explicit combination the backend cannot run is an error; with `auto` the precision is
    adapted (int8 on a GPU -> bf16/fp16, fp16/bf16 without one -> ONNX int8) and logged.
    """
    auto = settings.backend == "auto"
    # Asking about CUDA imports torch, so the ONNX-only path (CPU image) never asks.
    has_cuda = settings.backend != "onnx" and (cuda_available() if cuda is None else cuda)
    kind: Literal["onnx", "torch"] = (
        ("torch" if has_cuda else "onnx") if auto else settings.backend  # type: ignore[assignment]
    )
    precision = settings.precision
    if kind == "onnx":
        if precision in ("fp16", "bf16"):
            if not auto:
                raise InferenceConfigError(
                    f"the ONNX backend runs int8 or fp32, not {precision}; set "
                    "TEXTROUTE_INFERENCE_PRECISION=int8 (or fp32), or the torch backend on a GPU"
                )
            log.warning("inference.precision_adapted", asked=precision, using="int8")
            precision = "int8"
        return BackendPlan("onnx", precision)
    if importlib.util.find_spec("torch") is None:
        raise BackendUnavailableError(
            "the torch backend was asked for but PyTorch is not installed in this image; "
            "set TEXTROUTE_INFERENCE_BACKEND=onnx (or auto)"
        )
    device = "cuda" if has_cuda else "cpu"
    if precision == "int8":
        # int8 is the CPU default; on the torch path the nearest fast choice stands in for it.
        precision = ("bf16" if _cuda_bf16() else "fp16") if has_cuda else "fp32"
        log.info("inference.precision_adapted", asked="int8", using=precision, device=device)
    elif precision == "fp16" and not has_cuda:
        raise InferenceConfigError(
            "fp16 inference needs a CUDA GPU and none is available; use fp32 or bf16 on CPU, "
            "or the onnx backend with int8"
        )
    return BackendPlan("torch", precision, device)
