"""Dead letters from any consumed record: its bytes, origin and reason, always within limits.

The one home of dead-letter construction: the worker (stream/processor.py) and the review
service (stream/review_service.py) dead-letter records the same way.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from schemas.events import DeadLetter, DeadLetterReason, SourceRef
from schemas.messages import MAX_ID_LENGTH, MessageKind
from stream.records import InboundRecord

PREVIEW_CHARS = 512
# Caps on what a dead letter copies from an error: an exception can carry megabytes (e.g. the
# input). With the preview and the key they keep every dead letter's fields other than the
# payload under the 16 KiB WorkerSettings reserves for them, even at 6 JSON bytes a character.
ERROR_MESSAGE_CHARS = 1024
ERROR_CLASS_CHARS = 128
SHRUNK_ERROR_MESSAGE_CHARS = 256
#: Most bytes of the original Kafka key kept in a dead letter.
DEAD_LETTER_KEY_BYTES = 1024


@dataclass(frozen=True)
class EncodedDeadLetter:
    """A dead letter and its Kafka key and value."""

    message: DeadLetter
    key: bytes
    value: bytes


def dead_letter_key(dead: DeadLetter) -> bytes:
    """The message id when known, else the record's coordinates (unique per input record)."""
    if dead.message_id:
        return dead.message_id.encode("utf-8", "backslashreplace")
    s = dead.source
    return f"{s.topic}/{s.partition}/{s.offset}".encode("utf-8", "backslashreplace")


def build_dead_letter(
    record: InboundRecord,
    reason: DeadLetterReason,
    error_class: str,
    error_message: str,
    *,
    payload_bytes: int,
    message_id: str | None = None,
    kind: MessageKind | None = None,
) -> DeadLetter:
    """A dead letter carrying the record's bytes (their head, when there are more than
    `payload_bytes`) and why it was rejected; every text field valid Unicode and capped."""
    raw = record.value or b""
    key = record.key
    return DeadLetter(
        reason=reason,
        error_class=clean_text(error_class, ERROR_CLASS_CHARS),
        error_message=clean_text(error_message, ERROR_MESSAGE_CHARS),
        source=source_ref(record),
        payload_b64=base64.b64encode(raw[:payload_bytes]).decode("ascii"),
        payload_truncated=len(raw) > payload_bytes,
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        payload_preview=_preview(raw),
        payload_size=len(raw),
        key_b64=base64.b64encode(key[:DEAD_LETTER_KEY_BYTES]).decode("ascii") if key else None,
        key_truncated=key is not None and len(key) > DEAD_LETTER_KEY_BYTES,
        message_id=usable_id(message_id),
        kind=kind,
        first_seen_at=record.received_at,
    )


def encode_dead_letter(
    record: InboundRecord,
    reason: DeadLetterReason,
    error_class: str,
    error_message: str,
    *,
    payload_bytes: int,
    max_output_bytes: int,
    message_id: str | None = None,
    kind: MessageKind | None = None,
) -> EncodedDeadLetter:
    """`build_dead_letter`, encoded and within `max_output_bytes` (key + value); never raises:
    when even that fails, a dead letter of the record's coordinates, size and digest only."""
    try:
        dead = build_dead_letter(
            record,
            reason,
            error_class,
            error_message,
            payload_bytes=payload_bytes,
            message_id=message_id,
            kind=kind,
        )
        out = _encode(dead)
        if len(out.key) + len(out.value) > max_output_bytes:
            # Only limits tighter than the settings allow get here: the size, digest and
            # coordinates still identify the record.
            dead = dead.model_copy(
                update={
                    "payload_b64": "",
                    "payload_truncated": dead.payload_size > 0,
                    "payload_preview": None,
                    "key_b64": None,
                    "key_truncated": record.key is not None,
                    "error_message": dead.error_message[:SHRUNK_ERROR_MESSAGE_CHARS],
                }
            )
            out = _encode(dead)
        return out
    except Exception as exc:
        return _last_resort(record, reason, exc)


def _last_resort(
    record: InboundRecord, reason: DeadLetterReason, exc: Exception
) -> EncodedDeadLetter:
    """A dead letter of the record's coordinates, size and digest only: what is left when
    even the dead letter could not be built."""
    raw = record.value or b""
    dead = DeadLetter(
        reason=reason,
        error_class=clean_text(type(exc).__name__, ERROR_CLASS_CHARS),
        error_message=clean_text(f"the dead letter could not be built: {describe(exc)}", 256),
        source=SourceRef(
            topic=clean_text(record.topic, 256),
            partition=max(0, record.partition),
            offset=max(0, record.offset),
        ),
        payload_b64="",
        payload_truncated=bool(raw),
        payload_sha256=hashlib.sha256(raw).hexdigest(),
        payload_size=len(raw),
        key_truncated=record.key is not None,
        first_seen_at=record.received_at,
    )
    return _encode(dead)


def _encode(dead: DeadLetter) -> EncodedDeadLetter:
    return EncodedDeadLetter(dead, dead_letter_key(dead), dead.model_dump_json().encode("utf-8"))


def not_unicode(text: str) -> str | None:
    """Why `text` cannot be encoded as UTF-8 (a lone surrogate), or None when it can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"lone surrogate {text[exc.start]!a} at character {exc.start}"
    return None


def usable_id(message_id: str | None) -> str | None:
    """The id when a dead letter can carry it (and be keyed by it), else None."""
    if not message_id or len(message_id) > MAX_ID_LENGTH or not_unicode(message_id):
        return None
    return message_id


def clean_text(text: str, limit: int) -> str:
    """`text` as valid Unicode (lone surrogates escaped as \\udXXX) and at most `limit`
    characters, so a dead letter always encodes and stays small."""
    safe = text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit or len(safe) > limit:
        return safe[: limit - 1] + "\u2026"
    return safe


def describe(exc: BaseException) -> str:
    """`str(exc)`, or its repr or type when that fails or is empty."""
    try:
        return str(exc) or repr(exc)
    except Exception:
        return type(exc).__name__


def _preview(raw: bytes) -> str | None:
    """The start of the payload as text, when the whole payload is valid UTF-8."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Cutting the bytes may split a character; the whole value decoded, so dropping it is safe.
    return raw[: PREVIEW_CHARS * 4].decode("utf-8", errors="ignore")[:PREVIEW_CHARS]


def source_ref(record: InboundRecord) -> SourceRef:
    """Where the record came from: its topic, partition, offset and timestamp."""
    return SourceRef(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp=record.timestamp,
    )
