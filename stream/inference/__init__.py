"""Batch inference over model artifacts: ONNX Runtime (CPU, int8/fp32) or PyTorch (GPU/CPU)."""

from stream.inference.backend import Backend, BackendPlan, plan_backend
from stream.inference.errors import (
    ArtifactUnusableError,
    BackendUnavailableError,
    InferenceConfigError,
    InferenceError,
    ModelLoadFailedError,
    OnnxFileMissingError,
    TokenizerMissingError,
    WrongTaskError,
)
from stream.inference.items import Answer, ItemError
from stream.inference.multitask import MultiTaskPredictor
from stream.inference.predictor import Predictor, load_predictor
from stream.inference.settings import InferenceSettings

__all__ = [
    "Answer",
    "ArtifactUnusableError",
    "Backend",
    "BackendPlan",
    "BackendUnavailableError",
    "InferenceConfigError",
    "InferenceError",
    "InferenceSettings",
    "ItemError",
    "ModelLoadFailedError",
    "MultiTaskPredictor",
    "OnnxFileMissingError",
    "Predictor",
    "TokenizerMissingError",
    "WrongTaskError",
    "load_predictor",
    "plan_backend",
]
