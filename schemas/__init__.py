"""Pydantic v2 models shared by training, the stream and the API: artifacts, messages, events."""

from schemas.entities import Classification, Entity, LabelScore
from schemas.manifest import (
    MANIFEST_FILE,
    DataRef,
    FileEntry,
    FileRole,
    ModelManifest,
    TaskKind,
)

__all__ = [
    "MANIFEST_FILE",
    "Classification",
    "DataRef",
    "Entity",
    "FileEntry",
    "FileRole",
    "LabelScore",
    "ModelManifest",
    "TaskKind",
]
