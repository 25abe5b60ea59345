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
from inference.email_text import (
    REPLY_LANGUAGES,
    CleanedText,
    ParsedEmail,
    clean_email_body,
    html_to_text,
    looks_like_html,
    normalize_whitespace,
    parse_raw_email,
)
from inference.errors import (
    ArtifactUnusableError,
    BackendUnavailableError,
    EmailParseError,
    InferenceConfigError,
    InferenceError,
    ModelLoadFailedError,
    OnnxFileMissingError,
    TokenizerMissingError,
    WrongTaskError,
)
from inference.items import Answer, ItemError
from inference.language import (
    DEFAULT_MIN_SCORE,
    UNDETERMINED,
    LanguageGuess,
    detect_language,
    preload_language_model,
    supported_languages,
)
from inference.lexical import LexicalExpert, fuse, fuse_log_odds, load_lexical
from inference.loading import load_predictor
from inference.multitask import MultiTaskPredictor
from inference.onnx_backend import SLOW_FUSIONS, cpu_session, loaded_graphs, session_options
from inference.pooling import mean_pooled
from inference.predictor import Predictor, with_long_text
from inference.settings import InferenceSettings
from inference.torch_backend import AUTO_MODEL_CLASSES, auto_model_class

__all__ = [
    "AUTO_MODEL_CLASSES",
    "DEFAULT_MIN_SCORE",
    "REPLY_LANGUAGES",
    "SLOW_FUSIONS",
    "UNDETERMINED",
    "Answer",
    "AnswerWindow",
    "ArtifactUnusableError",
    "Backend",
    "BackendPlan",
    "BackendUnavailableError",
    "CleanedText",
    "DecodedAnswer",
    "EmailParseError",
    "InferenceConfigError",
    "InferenceError",
    "InferenceSettings",
    "ItemError",
    "LanguageGuess",
    "LexicalExpert",
    "ModelLoadFailedError",
    "MultiTaskPredictor",
    "OnnxFileMissingError",
    "ParsedEmail",
    "Predictor",
    "Row",
    "TextEncoder",
    "TokenizerMissingError",
    "WrongTaskError",
    "auto_model_class",
    "best_span",
    "bio_transitions",
    "bio_viterbi",
    "clean_email_body",
    "cpu_session",
    "decode_answers",
    "detect_language",
    "entity_spans",
    "fuse",
    "fuse_log_odds",
    "html_to_text",
    "load_lexical",
    "load_predictor",
    "loaded_graphs",
    "looks_like_html",
    "mean_pooled",
    "normalize_whitespace",
    "null_threshold_of",
    "pad",
    "parse_raw_email",
    "plan_backend",
    "preload_language_model",
    "session_options",
    "supported_languages",
    "window_centrality",
    "with_long_text",
]
