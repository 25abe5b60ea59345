"""Export and parity-gate settings, read from TEXTROUTE_EXPORT_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GateSettings(BaseSettings):
    """Thresholds of the parity gates run at export; `enabled=False` measures but never fails."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_EXPORT_GATE_", extra="ignore")

    enabled: bool = True
    max_logit_diff: float = Field(
        default=1e-3,
        ge=0.0,
        description="Largest |logit| difference allowed, fp32 ONNX vs PyTorch.",
    )
    min_argmax_agreement: float = Field(
        default=0.98, ge=0.0, le=1.0, description="Share of int8 argmaxes that must equal fp32's."
    )
    max_accuracy_drop: float = Field(
        default=0.5,
        ge=0.0,
        description="Accuracy points int8 may lose against fp32 (classification).",
    )
    max_f1_drop: float = Field(
        default=1.0, ge=0.0, description="Entity F1 points int8 may lose against fp32 (NER)."
    )
    max_micro_f1_drop: float = Field(
        default=0.5,
        ge=0.0,
        description="Micro-F1 points int8 may lose against fp32 (multi-label, at its thresholds).",
    )
    size_target: float = Field(
        default=0.70,
        ge=0.0,
        le=1.0,
        description="Size reduction int8 should reach; reported, not gated.",
    )


class ExportSettings(BaseSettings):
    """How `textroute export` builds the ONNX files."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_EXPORT_", extra="ignore")

    opset: int = Field(
        default=17, ge=14, description="ONNX opset; 14+ is needed for the BERT graph."
    )
    per_channel: bool = Field(
        default=True, description="Per-channel int8 weights (better accuracy)."
    )
    reduce_range: bool = Field(
        default=False, description="7-bit weights; can help accuracy on CPUs without VNNI."
    )
    optimize: bool = Field(
        default=True, description="Fuse embeddings, LayerNorm and GELU before quantizing."
    )
    sample: int = Field(
        default=512, gt=0, description="Rows of the evaluation data the gates run on."
    )
    batch_size: int = Field(default=32, gt=0, description="Batch size of the gate runs.")
    seed: int = 0
