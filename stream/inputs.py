"""Messages for `textroute produce`: JSON-lines files, turned into records for the topics."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from schemas.messages import MessageKind
from stream.config import TopicSettings
from stream.errors import InputFileError
from stream.samples import SampleRecord
from stream.topics import OutboundRecord


def _kind_of(line: str, default: MessageKind | None, where: str) -> MessageKind:
    if default is not None:
        return default
    try:
        data = json.loads(line)
        return MessageKind(data["kind"])
    except (json.JSONDecodeError, TypeError, KeyError, ValueError) as exc:
        kinds = ", ".join(k.value for k in MessageKind)
        raise InputFileError(
            f"{where}: cannot tell the message kind ({type(exc).__name__}); give each line a "
            f'"kind" field ({kinds}) or pass --kind for the whole file.'
        ) from exc


def records_from_jsonl(path: Path, kind: MessageKind | None = None) -> list[SampleRecord]:
    """One record per non-blank line, sent byte for byte (so bad lines reach the dead-letter
    topic as they are). Without `kind`, each line's "kind" field picks its topic."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise InputFileError(f"cannot read messages file {path}: {exc}") from exc
    records = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        text = raw.decode("utf-8", errors="replace")
        message_kind = _kind_of(text, kind, where)
        try:
            data = json.loads(text)
            key = str(data["id"]) if isinstance(data, dict) and "id" in data else where
        except json.JSONDecodeError:
            key = where
        records.append(SampleRecord(message_kind, key, raw))
    return records


def to_outbound(records: Iterable[SampleRecord], topics: TopicSettings) -> list[OutboundRecord]:
    """Each record on its kind's inbound topic, keyed by message id."""
    return [OutboundRecord(topics.topic_for(r.kind), r.key.encode(), r.value) for r in records]
