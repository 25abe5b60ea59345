"""Exported JSON Schemas accept what the models write and reject what they reject."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas.jsonschema import WIRE_SCHEMAS, export_json_schemas, json_schema
from schemas.messages import EmailMessage


def test_export_writes_one_valid_draft_2020_schema_per_wire_message(tmp_path: Path) -> None:
    paths = export_json_schemas(tmp_path)

    assert sorted(p.name for p in paths) == sorted(f"{n}.schema.json" for n in WIRE_SCHEMAS)
    for path in paths:
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(path.name.replace(".schema", ""))


def test_email_schema_uses_the_wire_name_from_and_requires_body_or_raw() -> None:
    schema = json_schema("email")
    assert "from" in schema["properties"]
    assert "id" in schema["required"]
    assert {"required": ["from", "to", "body"]} in schema["anyOf"]
    assert {"required": ["raw"]} in schema["anyOf"]


def test_email_schema_accepts_a_valid_email_and_rejects_one_without_body() -> None:
    validator = jsonschema.Draft202012Validator(json_schema("email"))
    good = EmailMessage.model_validate(
        {"id": "e1", "from": "a@x", "to": ["b@y"], "body": "hello"}
    ).model_dump(mode="json", by_alias=True)
    assert validator.is_valid(good)
    assert not validator.is_valid({"id": "e1", "from": "a@x", "to": ["b@y"]})
    assert validator.is_valid({"id": "e2", "raw": "From: a@x\nSubject: Hi\n\nhello"})
    with pytest.raises(ValueError, match="needs body"):
        EmailMessage.model_validate({"id": "e1", "from": "a@x", "to": ["b@y"]})


def test_routing_event_schema_validates_a_serialized_event() -> None:
    from tests.schemas.test_events import _event

    validator = jsonschema.Draft202012Validator(json_schema("routing-event"))
    validator.validate(_event().model_dump(mode="json"))
    assert not validator.is_valid({**_event().model_dump(mode="json"), "confidence": "high"})


def test_unknown_schema_name_lists_the_known_ones() -> None:
    with pytest.raises(KeyError, match="routing-event"):
        json_schema("nope")
