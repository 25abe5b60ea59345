"""The Kafka record as a consumer read it, routed by the worker or taken by the review service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class InboundRecord:
    """One Kafka record as a consumer received it: where it came from and its bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime | None
    received_at: datetime
