"""Request and response bodies of the HTTP API, built on the stream's message and event schemas."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, model_validator

from schemas.entities import Classification, Entity, LabelScore
from schemas.events import ModelRef, RouteReason, RouteTarget
from schemas.messages import ArticleMessage, EmailMessage, MessageKind, TicketMessage

# The inbound schemas carry their kind in the Kafka topic, not in the JSON; over HTTP a `kind`
# field says which schema a message follows. The attribute is not named `kind` because the
# stream's models use that name for the class-level MessageKind.


class EmailIn(EmailMessage):
    """An email message (the stream's EmailMessage) with `"kind": "email"`."""

    message_kind: Literal["email"] = Field(alias="kind")


class TicketIn(TicketMessage):
    """A ticket message (the stream's TicketMessage) with `"kind": "ticket"`."""

    message_kind: Literal["ticket"] = Field(alias="kind")


class ArticleIn(ArticleMessage):
    """An article message (the stream's ArticleMessage) with `"kind": "article"`."""

    message_kind: Literal["article"] = Field(alias="kind")


InboundIn = Annotated[EmailIn | TicketIn | ArticleIn, Field(discriminator="message_kind")]


class PredictRequest(BaseModel):
    """Exactly one of `text`, `texts`, `message` or `messages`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"text": "Stocks rallied after the bank raised its profit forecast."},
                {"texts": ["The team won the cup final.", "NASA launched a new probe."]},
                {
                    "messages": [
                        {
                            "kind": "ticket",
                            "id": "T-1001",
                            "customer": "acme",
                            "subject": "Invoice wrong",
                            "body": "We were charged twice for March.",
                        }
                    ]
                },
            ]
        },
    )

    text: StrictStr | None = Field(default=None, description="One text.")
    texts: list[StrictStr] | None = Field(default=None, description="A batch of texts.")
    message: InboundIn | None = Field(default=None, description="One inbound message.")
    messages: list[InboundIn] | None = Field(default=None, description="A batch of messages.")
    kind: MessageKind | None = Field(
        default=None,
        description="For /v1/route with plain texts: the message kind the routing rules "
        "apply to (messages carry their own).",
    )

    @model_validator(mode="after")
    def _exactly_one_input(self) -> PredictRequest:
        given = [
            name
            for name in ("text", "texts", "message", "messages")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            raise ValueError(
                "send exactly one of `text`, `texts`, `message` or `messages`"
                + (f" (got {', '.join(given)})" if given else " (got none)")
            )
        return self


class ModelInfo(BaseModel):
    """Which model answered."""

    model_config = ConfigDict(protected_namespaces=())

    name: str
    version: str
    backend: str


class ItemErrorInfo(BaseModel):
    """Why one item of a batch has no result; the other items are unaffected."""

    reason: str = Field(description="empty_text, not_a_string, text_too_long or inference_error.")
    message: str


class ItemRef(BaseModel):
    """Position of an item in the request, and its message id and kind when it was a message."""

    index: int = Field(ge=0)
    message_id: str | None = None
    kind: MessageKind | None = None
    error: ItemErrorInfo | None = None


class ClassifyResult(ItemRef):
    classification: Classification | None = None


class ClassifyResponse(BaseModel):
    model: ModelInfo
    results: list[ClassifyResult]


class EntitiesResult(ItemRef):
    entities: list[Entity] | None = Field(
        default=None,
        description="Spans over the item's text; for a message, over its model text "
        "(text fields joined by a newline, empty fields skipped).",
    )


class EntitiesResponse(BaseModel):
    model: ModelInfo
    results: list[EntitiesResult]


class RouteOutcome(BaseModel):
    """The routing decision, with the same fields and meaning as the stream's RoutingEvent."""

    category: str
    confidence: float = Field(ge=0.0, le=1.0)
    top_k: list[LabelScore] = Field(default_factory=list)
    entities: list[Entity] = Field(default_factory=list)
    route: str
    reasons: list[RouteReason]
    labels: list[LabelScore] = Field(
        default_factory=list, description="Multi-label models: every label over its threshold."
    )
    routes: list[RouteTarget] = Field(
        default_factory=list, description="Every destination, `route` first."
    )
    classifier: ModelRef
    ner: ModelRef | None = None


class RouteResult(ItemRef):
    routing: RouteOutcome | None = None


class RouteResponse(BaseModel):
    results: list[RouteResult]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable error code.")
    message: str = Field(description="What went wrong and what to do about it.")
    details: list[dict[str, object]] | None = None


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer has this shape; it never carries a stack trace."""

    error: ErrorDetail


class ReadyStatus(BaseModel):
    status: Literal["loading", "ready", "failed"]
    models: dict[str, ModelInfo] = Field(default_factory=dict)
    error: str | None = None


class FeedbackAccepted(BaseModel):
    """Feedback the broker acknowledged: the review store joins it with the routed message."""

    accepted: int = Field(ge=0, description="Feedback records produced and acknowledged.")
    topic: str = Field(description="The feedback topic they went to.")
