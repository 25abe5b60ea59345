"""Batch inference over model artifacts: ONNX Runtime (CPU, int8/fp32) or PyTorch (GPU/CPU)."""

from inference._encoding import Row, TextEncoder, pad
from inference._spans import entity_spans
from inference.backend import Backend, BackendPlan, plan_backend
from inference.decoding import bio_transitions, bio_viterbi
from inference.errors import (
    ArtifactUnusableError,
    BackendUnavailableError,
    InferenceConfigError,
    InferenceError,
    ModelLoadFailedError,
    OnnxFileMissingError,
    TokenizerMissingError,
    WrongTaskError,
)
from inference.items import Answer, ItemError
from inference.lexical import LexicalExpert, fuse, load_lexical
from inference.multitask import MultiTaskPredictor
from inference.onnx_backend import SLOW_FUSIONS, cpu_session, session_options
from inference.pooling import mean_pooled
from inference.predictor import Predictor, load_predictor
from inference.settings import InferenceSettings

__all__ = [
    "SLOW_FUSIONS",
    "Answer",
    "ArtifactUnusableError",
    "Backend",
    "BackendPlan",
    "BackendUnavailableError",
    "InferenceConfigError",
    "InferenceError",
    "InferenceSettings",
    "ItemError",
    "LexicalExpert",
    "ModelLoadFailedError",
    "MultiTaskPredictor",
    "OnnxFileMissingError",
    "Predictor",
    "Row",
    "TextEncoder",
    "TokenizerMissingError",
    "WrongTaskError",
    "bio_transitions",
    "bio_viterbi",
    "cpu_session",
    "entity_spans",
    "fuse",
    "load_lexical",
    "load_predictor",
    "mean_pooled",
    "pad",
    "plan_backend",
    "session_options",
]
