"""The review loop's records: reviewers' corrections, archived routed messages, shadow pairs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.entities import LabelScore
from schemas.events import ModelRef, SourceRef
from schemas.messages import MAX_ID_LENGTH, MessageKind

#: Version of the feedback, archive and shadow records (each carries it).
REVIEW_SCHEMA_VERSION = 1


class CorrectedEntity(BaseModel):
    """An entity as the reviewer says it is: offsets index the archived model text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: int = Field(ge=0)
    end: int = Field(gt=0)
    label: str = Field(min_length=1, description="Entity type, e.g. ORG.")

    @model_validator(mode="after")
    def _ordered(self) -> CorrectedEntity:
        if self.end <= self.start:
            raise ValueError(f"entity end {self.end} must be after its start {self.start}")
        return self


class Feedback(BaseModel):
    """A reviewer's verdict on one routed message, keyed by its message id.

    It carries the corrected label (`label`, or `labels` for a multi-label pipeline), or only
    `routing_correct` when the reviewer confirms or rejects the routing without a label, and
    optionally the corrected entities.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: int = REVIEW_SCHEMA_VERSION
    message_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    label: str | None = Field(
        default=None, min_length=1, description="The right label (single-label pipelines)."
    )
    labels: list[str] | None = Field(
        default=None,
        description="The right label set (multi-label pipelines); empty means none applies.",
    )
    entities: list[CorrectedEntity] | None = Field(
        default=None, description="The right entities, when the reviewer corrected them."
    )
    routing_correct: bool | None = Field(
        default=None,
        description="Whether the message went where it should; implied by the label when "
        "left out (the label equals the model's).",
    )
    reviewer: str = Field(min_length=1, max_length=256, description="Who reviewed it.")
    reviewed_at: datetime = Field(description="When it was reviewed.")
    comment: str | None = Field(default=None, max_length=4096)

    @model_validator(mode="after")
    def _unicode_text(self) -> Feedback:
        # A JSON escape like "\udc00" parses to a lone surrogate, which is no Unicode text:
        # no UTF-8 output (topic, store, dataset file) could carry it.
        texts = [self.message_id, self.reviewer, self.label, self.comment, *(self.labels or [])]
        texts += [e.label for e in self.entities or []]
        for text in texts:
            if text is not None and not text.isascii():
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    raise ValueError(
                        f"{text.encode('utf-8', 'backslashreplace').decode()[:80]!r} has a lone "
                        "surrogate (an unpaired \\ud800-\\udfff escape): not Unicode text"
                    ) from None
        return self

    @model_validator(mode="after")
    def _says_something(self) -> Feedback:
        if self.label is not None and self.labels is not None:
            raise ValueError("give `label` (single-label) or `labels` (multi-label), not both")
        if (
            self.label is None
            and self.labels is None
            and self.routing_correct is None
            and self.entities is None
        ):
            raise ValueError("feedback must carry a label, labels, entities or routing_correct")
        return self


class ArchivedMessage(BaseModel):
    """What the worker routed, kept so feedback can be joined with the text the model read:
    written to the compacted archive topic, keyed by message id, before its routing event."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    schema_version: int = REVIEW_SCHEMA_VERSION
    message_id: str
    kind: MessageKind
    pipeline: str
    text: str = Field(description="The model text: what the classifier read.")
    category: str = Field(description="The classifier's top label.")
    confidence: float = Field(ge=0.0, le=1.0)
    labels: list[str] = Field(
        default_factory=list, description="Every label the model gave (multi-label)."
    )
    route: str
    review: bool = Field(description="Whether it was sent to human review.")
    classifier: ModelRef
    routed_at: datetime
    source: SourceRef | None = None


class ShadowPrediction(BaseModel):
    """One model's answer in a shadow pair."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model: ModelRef
    category: str
    confidence: float = Field(ge=0.0, le=1.0)
    labels: list[LabelScore] = Field(default_factory=list)


class ShadowEvent(BaseModel):
    """The active model's and the candidate's answers on one message: the candidate is only
    watched, never routed by."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = REVIEW_SCHEMA_VERSION
    message_id: str
    kind: MessageKind
    pipeline: str
    active: ShadowPrediction
    candidate: ShadowPrediction
    agree: bool = Field(description="Same top label (multi-label: the same label set).")
    routed_at: datetime
