"""ONNX export and int8 quantization of model artifacts, behind parity gates."""

from training.export.errors import ExportError, ParityGateFailed, UnsupportedArtifactError
from training.export.export import FP32_FILE, INT8_FILE, export_artifact
from training.export.report import ExportReport, GateResult, ParityFigures
from training.export.sample import EvalSample, load_eval_sample
from training.export.settings import ExportSettings, GateSettings

__all__ = [
    "FP32_FILE",
    "INT8_FILE",
    "EvalSample",
    "ExportError",
    "ExportReport",
    "ExportSettings",
    "GateResult",
    "GateSettings",
    "ParityFigures",
    "ParityGateFailed",
    "UnsupportedArtifactError",
    "export_artifact",
    "load_eval_sample",
]
