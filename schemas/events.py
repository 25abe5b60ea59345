"""Outbound records of the stream: routing events and dead letters, JSON on the wire."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field

from schemas.entities import Entity, LabelScore
from schemas.messages import MessageKind

#: 2 added pipeline, labels, routes, attributes and model_text to RoutingEvent; every field of
#: version 1 keeps its meaning, so version-1 consumers read version-2 events unchanged.
EVENT_SCHEMA_VERSION = 2


class SourceRef(BaseModel):
    """Where a record was read from, so any output can be traced to its input."""

    model_config = ConfigDict(frozen=True)

    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    timestamp: datetime | None = Field(
        default=None, description="Kafka record timestamp (producer or broker time)."
    )


class ModelRef(BaseModel):
    """Which model artifact produced a prediction."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    version: str
    backend: str | None = Field(default=None, description="e.g. onnx-int8, torch.")


class RouteReason(BaseModel):
    """A routing rule that matched, with a human-readable explanation."""

    model_config = ConfigDict(frozen=True)

    rule: str = Field(description="Rule id, e.g. entity:watchlist or category:Sports.")
    detail: str


class RouteTarget(BaseModel):
    """One destination of a message and the rule that sent it there."""

    model_config = ConfigDict(frozen=True)

    queue: str
    rule: str = Field(description="Rule id, as in `reasons`.")


class ModelText(BaseModel):
    """The text the models read, so entity offsets can be checked against it: the message's
    text fields joined, after the pipeline's cleaning (HTML, quoted replies, signatures)."""

    model_config = ConfigDict(frozen=True)

    length: int = Field(ge=0, description="Length in characters (Unicode code points).")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="Hex sha256 of its UTF-8 bytes.")
    cleaned: bool = Field(
        default=False, description="True when cleaning changed the text the message carried."
    )
    language: str | None = Field(
        default=None, description="ISO 639-1 code found by the pipeline's language check."
    )
    attachments: int | None = Field(
        default=None, ge=0, description="Raw emails: attachments counted (never read)."
    )
    text: str | None = Field(
        default=None, description="The text itself, when the pipeline is set to include it."
    )


class RoutingEvent(BaseModel):
    """The enriched routing decision for one inbound message, keyed by message id."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = EVENT_SCHEMA_VERSION
    message_id: str
    kind: MessageKind
    category: str = Field(description="The classifier's top label.")
    confidence: float = Field(ge=0.0, le=1.0, description="Probability of `category`.")
    top_k: list[LabelScore] = Field(default_factory=list, description="Best labels first.")
    entities: list[Entity] = Field(
        default_factory=list,
        description="Named entities; offsets index into the message's model text "
        "(its text fields joined by a newline, empty fields skipped).",
    )
    route: str = Field(description="Destination queue or desk (the first of `routes`).")
    reasons: list[RouteReason] = Field(
        description="Matched rules, the one that chose `route` first.", min_length=1
    )
    pipeline: str = Field(default="default", description="The pipeline that routed it.")
    labels: list[LabelScore] = Field(
        default_factory=list,
        description="Multi-label models: every label at or above its threshold, best first; "
        "single-label classifiers: the one label.",
    )
    routes: list[RouteTarget] = Field(
        default_factory=list,
        description="Every destination, `route` first: a multi-label message may go to "
        "several desks.",
    )
    attributes: dict[str, LabelScore] = Field(
        default_factory=dict,
        description="Labels of the pipeline's attribute models, e.g. a ticket's priority.",
    )
    model_text: ModelText | None = Field(
        default=None, description="The text the models read (entity offsets index it)."
    )
    classifier: ModelRef
    ner: ModelRef | None = None
    received_at: datetime = Field(description="When the worker read the message.")
    routed_at: datetime = Field(description="When the routing decision was made.")
    processing_ms: float = Field(ge=0.0, description="routed_at - received_at, milliseconds.")
    source: SourceRef


class DeadLetterReason(str, Enum):
    """Why a record could not be routed."""

    MESSAGE_TOO_LARGE = "message_too_large"
    NOT_UTF8 = "not_utf8"
    INVALID_JSON = "invalid_json"
    SCHEMA_ERROR = "schema_error"
    UNKNOWN_TOPIC = "unknown_topic"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    NOT_A_STRING = "not_a_string"
    INFERENCE_ERROR = "inference_error"
    #: No pipeline serves the message's kind (see the worker's pipelines file).
    NO_PIPELINE = "no_pipeline"
    #: The routing event would be larger than the worker may produce (max_output_bytes).
    OUTPUT_TOO_LARGE = "output_too_large"
    #: Feedback for a message the archive never received within the feedback wait.
    UNKNOWN_MESSAGE = "unknown_message"
    #: Feedback naming a label the message's pipeline does not have.
    UNKNOWN_LABEL = "unknown_label"
    UNEXPECTED_ERROR = "unexpected_error"


class DeadLetter(BaseModel):
    """A record the worker could not route, with its original bytes and the reason."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = EVENT_SCHEMA_VERSION
    reason: DeadLetterReason
    error_class: str = Field(description="Exception or error type that rejected the record.")
    error_message: str
    source: SourceRef
    payload_b64: str = Field(
        description="The original value bytes, base64 (standard alphabet); only their head when "
        "`payload_truncated`."
    )
    payload_truncated: bool = Field(
        default=False,
        description="True when `payload_b64` holds only the first bytes of a value too large to "
        "keep whole (see payload_size and payload_sha256).",
    )
    payload_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="Hex sha256 of the whole original value, truncated or not.",
    )
    payload_preview: str | None = Field(
        default=None, description="Start of the value as UTF-8 text, when it decodes."
    )
    payload_size: int = Field(ge=0, description="Length of the original value in bytes.")
    key_b64: str | None = Field(
        default=None,
        description="The original key bytes, base64; only their head when `key_truncated`.",
    )
    key_truncated: bool = Field(
        default=False, description="True when `key_b64` holds only the first bytes of the key."
    )
    message_id: str | None = Field(default=None, description="The message id, if it parsed.")
    kind: MessageKind | None = None
    first_seen_at: datetime = Field(description="When the worker first read the record.")
