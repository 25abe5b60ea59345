"""Errors of ONNX export and quantization: what failed and what to do about it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from training.errors import GateFailed, TrainingError

if TYPE_CHECKING:
    from training.export.report import ExportReport


class ExportError(TrainingError):
    """The artifact could not be exported to ONNX or quantized."""


class UnsupportedArtifactError(ExportError):
    """The artifact's task or files cannot be exported (e.g. no fast tokenizer)."""


class ParityGateFailed(GateFailed):
    """A parity gate failed; `report` holds every figure measured, passed or not."""

    def __init__(self, message: str, report: ExportReport) -> None:
        super().__init__(message)
        self.report = report


__all__ = ["ExportError", "GateFailed", "ParityGateFailed", "UnsupportedArtifactError"]
