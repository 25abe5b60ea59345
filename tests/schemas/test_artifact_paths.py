"""Files a manifest names stay inside the artifact directory: no '..', absolute path or symlink
out of it, whatever their checksums say."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.artifact import read_manifest, sha256_file
from schemas.errors import ArtifactError, ArtifactPathOutside, ManifestInvalid
from schemas.manifest import MANIFEST_FILE, FileEntry, LexicalFusion


def write_raw_manifest(root: Path, files: list[dict[str, Any]], **extra: Any) -> None:
    """manifest.json as an attacker or a careless tool would write it: unchecked JSON."""
    manifest = {
        "name": "m",
        "version": "1",
        "task": "classification",
        "labels": ["a", "b"],
        "base_model": "tiny",
        "max_length": 32,
        "files": files,
        **extra,
    }
    (root / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")


def entry(path: str, target: Path) -> dict[str, Any]:
    """A manifest entry whose checksum and size match `target`, so only its path is wrong."""
    return {"path": path, "sha256": sha256_file(target), "size": target.stat().st_size}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file beside (not inside) the artifact directory."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not part of any model\n", encoding="utf-8")
    return secret


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    root = tmp_path / "artifact"
    root.mkdir()
    return root


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_manifest_paths_outside_the_artifact_are_refused(
    kind: str, artifact: Path, outside: Path
) -> None:
    if kind == "dotdot":
        write_raw_manifest(artifact, [entry("../secret.txt", outside)])
        expected: type[ArtifactError] = ManifestInvalid
    elif kind == "absolute":
        write_raw_manifest(artifact, [entry(str(outside), outside)])
        expected = ManifestInvalid
    else:
        (artifact / "weights.bin").symlink_to(outside)
        write_raw_manifest(artifact, [entry("weights.bin", outside)])
        expected = ArtifactPathOutside

    with pytest.raises(expected, match=r"outside|inside it") as refused:
        read_manifest(artifact)
    assert isinstance(refused.value, ArtifactError)


@pytest.mark.parametrize(
    "path",
    ["a/../../secret.txt", "..", "/etc/hostname", "C:/Windows/win.ini", "..\\secret.txt", ""],
)
def test_file_entries_refuse_paths_that_can_leave_the_directory(path: str) -> None:
    with pytest.raises(ValidationError, match="must be relative to the artifact directory"):
        FileEntry(path=path, sha256="0" * 64, size=0)


def test_the_lexical_expert_file_is_confined_too(artifact: Path, outside: Path) -> None:
    with pytest.raises(ValidationError, match="must be relative"):
        LexicalFusion(file="../secret.txt", weight=1.0, c=1.0, features=3)
    (artifact / "lexical.npz").symlink_to(outside)
    lexical = {"file": "lexical.npz", "weight": 1.0, "c": 1.0, "features": 3}
    write_raw_manifest(artifact, [], lexical=lexical)
    with pytest.raises(ArtifactPathOutside, match=r"lexical\.npz"):
        read_manifest(artifact)


def test_a_real_artifact_with_its_model_file_symlinked_out_is_refused(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "classifier"
    shutil.copytree(tiny_classifier_artifact, copy)
    model = copy / "model.int8.onnx"
    moved = shutil.move(model, tmp_path / "elsewhere.onnx")
    model.symlink_to(moved)  # the same bytes, so only the location is wrong

    with pytest.raises(ArtifactPathOutside, match=r"model\.int8\.onnx resolves to .*outside"):
        read_manifest(copy)


def test_symlinks_inside_the_artifact_and_a_symlinked_artifact_still_load(
    artifact: Path, tmp_path: Path
) -> None:
    (artifact / "data").mkdir()
    real = artifact / "data" / "weights.bin"
    real.write_bytes(b"\0" * 16)
    (artifact / "weights.bin").symlink_to(Path("data") / "weights.bin")
    write_raw_manifest(artifact, [entry("weights.bin", real), entry("data/weights.bin", real)])
    current = tmp_path / "current"
    current.symlink_to(artifact, target_is_directory=True)

    assert [f.path for f in read_manifest(artifact).files] == ["weights.bin", "data/weights.bin"]
    assert read_manifest(current).name == "m"
