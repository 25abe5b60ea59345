"""JSON Schema (draft 2020-12) of every wire message, exported for other teams."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from schemas.events import DeadLetter, RoutingEvent
from schemas.feedback import ArchivedMessage, Feedback, ShadowEvent
from schemas.messages import ArticleMessage, EmailMessage, TicketMessage

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID_BASE = "https://textroute.dev/schemas/"

#: Schema name -> (model, mode). Inbound messages are documented as producers must write
#: them (validation); outbound records as the worker writes them (serialization).
WIRE_SCHEMAS: dict[str, tuple[type[BaseModel], Literal["validation", "serialization"]]] = {
    "email": (EmailMessage, "validation"),
    "ticket": (TicketMessage, "validation"),
    "article": (ArticleMessage, "validation"),
    "routing-event": (RoutingEvent, "serialization"),
    "dead-letter": (DeadLetter, "serialization"),
    "feedback": (Feedback, "validation"),
    "archived-message": (ArchivedMessage, "serialization"),
    "shadow-event": (ShadowEvent, "serialization"),
}


def json_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of wire message `name` (a key of WIRE_SCHEMAS)."""
    if name not in WIRE_SCHEMAS:
        known = ", ".join(sorted(WIRE_SCHEMAS))
        raise KeyError(f"no wire schema named {name!r}; known: {known}")
    model, mode = WIRE_SCHEMAS[name]
    schema = model.model_json_schema(by_alias=True, mode=mode)
    return {"$schema": JSON_SCHEMA_DIALECT, "$id": f"{SCHEMA_ID_BASE}{name}.json", **schema}


def export_json_schemas(out_dir: Path | str) -> list[Path]:
    """Write `<name>.schema.json` for every wire message into `out_dir`; return the paths."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    written = []
    for name in WIRE_SCHEMAS:
        path = root / f"{name}.schema.json"
        path.write_text(json.dumps(json_schema(name), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written
