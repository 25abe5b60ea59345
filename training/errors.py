"""Errors of the training package: what went wrong and what to do about it."""

from __future__ import annotations

from schemas.errors import ArtifactError, TextrouteError


class TrainingError(TextrouteError):
    """Base class of every error the training package raises on purpose."""


class DataError(TrainingError):
    """The input data cannot be used: missing file or column, empty text, bad labels."""


class DataFileNotFound(DataError):
    """A local data file or directory does not exist."""


class ColumnNotFound(DataError):
    """A requested text or label column is not in the data."""


class EmptyText(DataError):
    """One or more rows have empty text after joining the text columns."""


class UnknownLabel(DataError):
    """A label is not in the label map the model was trained with."""


class EmptyLabels(DataError):
    """A multi-label row has no label at all."""


class TooFewClasses(DataError):
    """Classification needs at least two distinct labels in the training data."""


class ConfigError(TrainingError):
    """A training option is out of range or options contradict each other."""


class ModelLoadError(TrainingError):
    """The base model or a trained model cannot be loaded (bad id, offline, corrupt files)."""


class GateFailed(TrainingError):
    """An export parity gate failed: the exported model differs too much from the original."""


__all__ = [
    "ArtifactError",
    "ColumnNotFound",
    "ConfigError",
    "DataError",
    "DataFileNotFound",
    "EmptyLabels",
    "EmptyText",
    "GateFailed",
    "ModelLoadError",
    "TooFewClasses",
    "TrainingError",
    "UnknownLabel",
]
