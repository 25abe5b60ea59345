"""The export report: file sizes and parity figures, written as export_report.json."""

from __future__ import annotations

from pydantic import BaseModel, Field

REPORT_FILE = "export_report.json"
FAILED_REPORT_FILE = "export_report.failed.json"


class ParityFigures(BaseModel):
    """What the gates measured on the evaluation sample."""

    samples: int = Field(ge=0, description="Examples (texts, pairs or sentences) compared.")
    data_source: str
    max_logit_diff: float = Field(description="max |logit|, fp32 ONNX vs PyTorch.")
    argmax_agreement: float = Field(description="Share of int8 argmaxes equal to fp32's.")
    metric: str | None = Field(
        default=None,
        description="'accuracy', 'f1' (NER) or 'f1_micro' (multi-label); None without labels.",
    )
    metric_torch: float | None = None
    metric_fp32: float | None = None
    metric_int8: float | None = None

    @property
    def metric_drop_points(self) -> float | None:
        """fp32 minus int8 metric, in points (percent); positive means int8 is worse."""
        if self.metric_fp32 is None or self.metric_int8 is None:
            return None
        return 100.0 * (self.metric_fp32 - self.metric_int8)


class GateResult(BaseModel):
    name: str
    value: float
    limit: float
    passed: bool


class ExportReport(BaseModel):
    """Everything `export_artifact` produced and measured."""

    artifact: str
    opset: int
    per_channel: bool
    reduce_range: bool
    optimized: bool
    weights_bytes: int = Field(description="Size of the PyTorch weights (safetensors).")
    fp32_bytes: int
    int8_bytes: int
    size_reduction: float = Field(description="1 - int8_bytes / fp32_bytes.")
    size_target: float
    parity: ParityFigures | None = None
    heads: dict[str, ParityFigures] = Field(
        default_factory=dict,
        description="classify-and-tag: the figures of each task of the head ('classification', "
        "'ner'), measured separately; `parity` is then None.",
    )
    gates: list[GateResult] = Field(default_factory=list)
    gates_enabled: bool = True

    @property
    def size_target_met(self) -> bool:
        return self.size_reduction >= self.size_target

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def measured(self) -> dict[str, ParityFigures]:
        """The figures by head ('' for a single-task artifact)."""
        return dict(self.heads) if self.heads else ({"": self.parity} if self.parity else {})

    def failures(self) -> list[GateResult]:
        return [g for g in self.gates if not g.passed]
