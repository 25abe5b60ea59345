"""Read, write and verify model-artifact directories through their manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from schemas.errors import (
    ArtifactFileMissing,
    ArtifactPathOutside,
    ChecksumMismatch,
    ManifestInvalid,
    ManifestMissing,
)
from schemas.manifest import MANIFEST_FILE, FileEntry, FileRole, ModelManifest

_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large weights do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_entry(root: Path, path: Path, role: FileRole) -> FileEntry:
    """A manifest entry for `path` (inside `root`) with its checksum and size."""
    return FileEntry(
        path=path.relative_to(root).as_posix(),
        sha256=sha256_file(path),
        size=path.stat().st_size,
        role=role,
    )


def with_files(manifest: ModelManifest, root: Path, files: dict[Path, FileRole]) -> ModelManifest:
    """A copy of `manifest` whose entries for `files` are (re)computed; other entries are kept."""
    fresh = {p.relative_to(root).as_posix(): file_entry(root, p, role) for p, role in files.items()}
    kept = [f for f in manifest.files if f.path not in fresh]
    return manifest.model_copy(update={"files": kept + list(fresh.values())})


def write_manifest(manifest: ModelManifest, root: Path) -> Path:
    """Write manifest.json atomically (temp file + rename) so readers never see half a file."""
    target = root / MANIFEST_FILE
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target


def read_manifest(root: Path | str, *, verify: bool = True) -> ModelManifest:
    """Load manifest.json of an artifact and, by default, verify every file's sha256.

    Raises a subclass of ArtifactError that names the directory and the file at fault; a file
    path leaving the directory is ManifestInvalid ('..', absolute) or ArtifactPathOutside (a
    symlink out of it, found when verifying).
    """
    root = Path(root)
    path = root / MANIFEST_FILE
    if not path.is_file():
        raise ManifestMissing(
            f"{root} is not a textroute model artifact: {MANIFEST_FILE} not found. "
            "Train one with `textroute train` or pass the artifact directory."
        )
    try:
        manifest = ModelManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise ManifestInvalid(f"{path} is not a valid manifest: {exc}") from exc
    if verify:
        verify_files(manifest, root)
    return manifest


def confined_path(root: Path, relative: str) -> Path:
    """`root / relative`, refused with ArtifactPathOutside when it resolves (through '..', an
    absolute path or a symlink) to somewhere outside `root`."""
    path = root / relative
    base = root.resolve()
    target = path.resolve()
    if not target.is_relative_to(base):
        raise ArtifactPathOutside(
            f"artifact {root}: {relative} resolves to {target}, outside the artifact directory; "
            f"{MANIFEST_FILE} may name only files inside it (no symlink out of it, '..' or "
            "absolute path). Copy the file into the artifact and re-export."
        )
    return path


def verify_files(manifest: ModelManifest, root: Path, roles: set[FileRole] | None = None) -> None:
    """Check that each file (of `roles`, or all) is inside `root`, exists and matches its
    recorded sha256."""
    if manifest.lexical is not None:
        confined_path(root, manifest.lexical.file)
    for entry in manifest.files:
        if roles is not None and entry.role not in roles:
            continue
        path = confined_path(root, entry.path)
        if not path.is_file():
            raise ArtifactFileMissing(
                f"artifact {root}: file {entry.path} ({entry.role.value}) listed in "
                f"{MANIFEST_FILE} is missing; re-export or re-train the model."
            )
        actual = sha256_file(path)
        if actual != entry.sha256:
            raise ChecksumMismatch(
                f"artifact {root}: {entry.path} is corrupt or was modified "
                f"(sha256 {actual[:12]}…, manifest says {entry.sha256[:12]}…); "
                "restore it or re-export the model."
            )
