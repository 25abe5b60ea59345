"""Inbound messages (email, ticket, article) as they arrive on Kafka, JSON on the wire."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The separator between the fields the models read; a newline keeps offsets easy to map
# back (each field starts right after it) and tokenizes as plain whitespace.
TEXT_SEPARATOR = "\n"

MAX_ID_LENGTH = 256


class MessageKind(str, Enum):
    """The kinds of text textroute routes; each arrives on its own topic."""

    EMAIL = "email"
    TICKET = "ticket"
    ARTICLE = "article"


class InboundMessage(BaseModel):
    """Fields every inbound message shares; subclasses say which text the models see."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")

    kind: ClassVar[MessageKind]
    #: Fields joined with TEXT_SEPARATOR, in this order, into the text the models see.
    text_fields: ClassVar[tuple[str, ...]]

    id: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="Producer-assigned unique id; routing events are keyed by it.",
    )

    def text_for_models(self) -> str:
        """The text classified and scanned for entities; entity offsets index into it."""
        parts = (str(getattr(self, name) or "") for name in self.text_fields)
        return TEXT_SEPARATOR.join(p for p in parts if p.strip())


class EmailMessage(InboundMessage):
    """An email. The models see `subject` and `body`, or what the worker reads from `raw`."""

    kind: ClassVar[MessageKind] = MessageKind.EMAIL
    text_fields: ClassVar[tuple[str, ...]] = ("subject", "body")
    # What _addressed_or_raw checks, told to other teams' validators too.
    model_config = ConfigDict(
        json_schema_extra={"anyOf": [{"required": ["raw"]}, {"required": ["from", "to", "body"]}]}
    )

    sender: str | None = Field(
        default=None,
        alias="from",
        min_length=1,
        description="Sender address; required unless `raw` is given (its From header).",
    )
    to: list[str] = Field(
        default_factory=list,
        description="Recipient addresses; required unless `raw` is given (its To header).",
    )
    subject: str = ""
    body: str = Field(default="", description="The body text (plain or HTML).")
    raw: str | None = Field(
        default=None,
        min_length=1,
        description="The whole RFC 822 / MIME message as text: the worker takes subject and "
        "body from it (text/plain preferred, attachments counted, not read) when `body` is "
        "empty.",
    )
    received_at: datetime | None = Field(
        default=None, description="When the mail server received it (ISO 8601)."
    )

    @model_validator(mode="after")
    def _addressed_or_raw(self) -> EmailMessage:
        if self.raw is None:
            missing = [
                name for name, value in (("from", self.sender), ("to", self.to)) if not value
            ]
            if "body" not in self.model_fields_set:
                missing.append("body")
            if missing:
                raise ValueError(f"an email without `raw` needs {' and '.join(missing)}")
        return self

    @field_validator("to", mode="before")
    @classmethod
    def _one_recipient_as_list(cls, value: object) -> object:
        # Mail gateways send a bare string for a single recipient.
        return [value] if isinstance(value, str) else value


class TicketMessage(InboundMessage):
    """A support ticket. The models see `subject` and `body`."""

    kind: ClassVar[MessageKind] = MessageKind.TICKET
    text_fields: ClassVar[tuple[str, ...]] = ("subject", "body")

    customer: str = Field(min_length=1, description="Customer id or name.")
    subject: str = ""
    body: str
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    channel: str = Field(default="web", description="Where it came from: web, email, phone, chat.")


class ArticleMessage(InboundMessage):
    """A news article. The models see `headline` and `body`."""

    kind: ClassVar[MessageKind] = MessageKind.ARTICLE
    text_fields: ClassVar[tuple[str, ...]] = ("headline", "body")

    headline: str = ""
    body: str
    source: str = Field(min_length=1, description="Publisher or wire, e.g. Reuters.")
    published_at: datetime | None = None


MESSAGE_TYPES: dict[MessageKind, type[InboundMessage]] = {
    MessageKind.EMAIL: EmailMessage,
    MessageKind.TICKET: TicketMessage,
    MessageKind.ARTICLE: ArticleMessage,
}
