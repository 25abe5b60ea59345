"""Pydantic v2 models shared by training, the stream and the API: artifacts, messages, events."""

from schemas.entities import Classification, Entity, LabelScore
from schemas.events import (
    DeadLetter,
    DeadLetterReason,
    ModelRef,
    ModelText,
    RouteReason,
    RouteTarget,
    RoutingEvent,
    SourceRef,
)
from schemas.manifest import (
    MANIFEST_FILE,
    DataRef,
    FileEntry,
    FileRole,
    LexicalFusion,
    ModelManifest,
    Pooling,
    TaskKind,
)
from schemas.messages import (
    MESSAGE_TYPES,
    ArticleMessage,
    EmailMessage,
    InboundMessage,
    MessageKind,
    TicketMessage,
)

__all__ = [
    "MANIFEST_FILE",
    "MESSAGE_TYPES",
    "ArticleMessage",
    "Classification",
    "DataRef",
    "DeadLetter",
    "DeadLetterReason",
    "EmailMessage",
    "Entity",
    "FileEntry",
    "FileRole",
    "InboundMessage",
    "LabelScore",
    "LexicalFusion",
    "MessageKind",
    "ModelManifest",
    "ModelRef",
    "ModelText",
    "Pooling",
    "RouteReason",
    "RouteTarget",
    "RoutingEvent",
    "SourceRef",
    "TaskKind",
    "TicketMessage",
]
