"""Predictions shared by the inference layer, the stream's events and the HTTP API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Entity(BaseModel):
    """A named entity as a span over the ORIGINAL text (B-/I- pieces merged)."""

    model_config = ConfigDict(frozen=True)

    type: str = Field(description="Entity type without the BIO prefix, e.g. ORG.")
    text: str = Field(description="text[start:end] of the original input.")
    start: int = Field(ge=0, description="Start character offset, inclusive.")
    end: int = Field(ge=0, description="End character offset, exclusive.")
    score: float = Field(ge=0.0, le=1.0, description="Mean probability of the span's tokens.")


class LabelScore(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    score: float = Field(ge=0.0, le=1.0)


class Classification(BaseModel):
    """A classifier's answer for one text."""

    model_config = ConfigDict(frozen=True)

    label: str
    score: float = Field(ge=0.0, le=1.0, description="Probability of `label`.")
    top_k: list[LabelScore] = Field(default_factory=list, description="Best labels first.")
    labels: list[LabelScore] | None = Field(
        default=None,
        description="Multi-label models: every label whose score reaches its threshold, best "
        "first (may be empty); None for single-label classifiers. `label` is the top score "
        "either way.",
    )
