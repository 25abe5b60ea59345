"""A manifest's lineage: optional (manifests written before it still load), frozen, checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import DataRef, Lineage, ModelManifest
from schemas.artifact import read_manifest, write_manifest

SHA = "ab" * 32
OLD_MANIFEST = {
    "schema_version": 1,
    "name": "topics",
    "version": "20250101T000000Z",
    "task": "classification",
    "labels": ["World", "Sports"],
    "base_model": "offline:minilm",
    "max_length": 128,
}


def test_a_manifest_written_before_lineage_loads_without_one(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps(OLD_MANIFEST), encoding="utf-8")
    assert read_manifest(tmp_path).lineage is None


def test_lineage_round_trips_through_manifest_json(tmp_path: Path) -> None:
    lineage = Lineage(
        parent_name="topics",
        parent_version="20250101T000000Z",
        parent_manifest_sha256=SHA,
        data=[
            DataRef(source="reviewed.csv", rows=10, sha256=SHA),
            DataRef(source="train.csv", rows=120),
        ],
        new_rows=10,
        replay_rows=40,
    )
    write_manifest(ModelManifest.model_validate({**OLD_MANIFEST, "lineage": lineage}), tmp_path)
    assert read_manifest(tmp_path).lineage == lineage
    with pytest.raises(ValidationError):
        lineage.new_rows = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    "bad",
    [{"parent_manifest_sha256": "not-a-sha"}, {"new_rows": -1}, {"replay_rows": -1}],
)
def test_lineage_refuses_a_bad_checksum_or_row_count(bad: dict[str, object]) -> None:
    fields = {
        "parent_name": "topics",
        "parent_version": "1",
        "parent_manifest_sha256": SHA,
        "new_rows": 1,
        "replay_rows": 0,
    }
    with pytest.raises(ValidationError):
        Lineage.model_validate({**fields, **bad})
