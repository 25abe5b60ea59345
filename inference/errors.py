"""Errors of the inference layer: unusable artifacts, bad settings, backends that cannot run."""

from __future__ import annotations

from schemas.errors import ArtifactError, TextrouteError


class InferenceError(TextrouteError):
    """Base class of every error the inference layer raises on purpose."""


class InferenceConfigError(InferenceError):
    """The inference settings ask for something this machine or artifact cannot do."""


class BackendUnavailableError(InferenceConfigError):
    """The requested backend (PyTorch, CUDA) is not installed or has no device here."""


class WrongTaskError(InferenceError):
    """The predictor was asked for a task its artifact was not trained for."""


class ArtifactUnusableError(InferenceError, ArtifactError):
    """The artifact verifies but lacks what inference needs (also an ArtifactError)."""


class OnnxFileMissingError(ArtifactUnusableError):
    """The ONNX backend was asked for but the artifact holds no ONNX file of that precision."""


class TokenizerMissingError(ArtifactUnusableError):
    """The artifact has no fast tokenizer (tokenizer.json)."""


class ModelLoadFailedError(ArtifactUnusableError):
    """The model file is listed and verified but the runtime cannot load it."""


class EmailParseError(InferenceError):
    """A raw email is not an RFC 822 / MIME message this package can read."""


__all__ = [
    "ArtifactUnusableError",
    "BackendUnavailableError",
    "EmailParseError",
    "InferenceConfigError",
    "InferenceError",
    "ModelLoadFailedError",
    "OnnxFileMissingError",
    "TokenizerMissingError",
    "WrongTaskError",
]
