"""The manifest of a classify-and-tag artifact: class labels are the tail of the head's labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from schemas import ModelManifest, TaskKind
from schemas.artifact import read_manifest, write_manifest
from schemas.errors import ManifestInvalid

TAGS = ["O", "B-PER", "I-PER"]
CLASSES = ["Sports", "Business"]


def _manifest(**fields: object) -> ModelManifest:
    return ModelManifest.model_validate(
        {
            "name": "m",
            "version": "1",
            "task": "classify-and-tag",
            "labels": TAGS + CLASSES,
            "base_model": "tiny",
            "max_length": 32,
            **fields,
        }
    )


def test_class_labels_split_the_head_into_tags_then_classes() -> None:
    manifest = _manifest(class_labels=CLASSES)
    assert manifest.task is TaskKind.CLASSIFY_AND_TAG
    assert manifest.tag_labels == TAGS
    assert manifest.class_labels == CLASSES


@pytest.mark.parametrize(
    "classes", [["Business", "Sports"], ["Sports"], TAGS + CLASSES, []], ids=str
)
def test_class_labels_that_are_not_the_tail_after_a_tag_are_invalid(classes: list[str]) -> None:
    with pytest.raises(ValidationError, match="must be the last entries of labels"):
        _manifest(class_labels=classes)


def test_a_manifest_written_before_class_labels_existed_still_loads(tmp_path: Path) -> None:
    old = {
        "schema_version": 1,
        "name": "ner",
        "version": "20250101T000000Z",
        "task": "token-classification",
        "labels": TAGS,
        "base_model": "tiny",
        "max_length": 32,
    }
    (tmp_path / "manifest.json").write_text(json.dumps(old), encoding="utf-8")

    manifest = read_manifest(tmp_path)

    assert manifest.class_labels is None and manifest.tag_labels == TAGS


def test_a_manifest_with_misplaced_class_labels_is_reported_as_invalid(tmp_path: Path) -> None:
    write_manifest(_manifest(class_labels=CLASSES), tmp_path)
    data = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    data["class_labels"] = ["O", "Sports"]
    (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")

    with pytest.raises(ManifestInvalid, match="class_labels"):
        read_manifest(tmp_path)
