"""Batch inference over model artifacts: ONNX Runtime (CPU, int8/fp32) or PyTorch (GPU/CPU)."""

from inference._answers import (
    AnswerWindow,
    DecodedAnswer,
    best_span,
    decode_answers,
    null_threshold_of,
)
from inference._encoding import Row, TextEncoder, pad
from inference._spans import entity_spans, window_centrality
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
from inference.loading import load_predictor
from inference.multitask import MultiTaskPredictor
from inference.onnx_backend import SLOW_FUSIONS, cpu_session, session_options
from inference.pooling import mean_pooled
from inference.predictor import Predictor
from inference.settings import InferenceSettings
from inference.torch_backend import AUTO_MODEL_CLASSES, auto_model_class

__all__ = [
    "AUTO_MODEL_CLASSES",
    "SLOW_FUSIONS",
    "Answer",
    "AnswerWindow",
    "ArtifactUnusableError",
    "Backend",
    "BackendPlan",
    "BackendUnavailableError",
    "DecodedAnswer",
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
    "auto_model_class",
    "best_span",
    "bio_transitions",
    "bio_viterbi",
    "cpu_session",
    "decode_answers",
    "entity_spans",
    "fuse",
    "load_lexical",
    "load_predictor",
    "mean_pooled",
    "null_threshold_of",
    "pad",
    "plan_backend",
    "session_options",
    "window_centrality",
]
