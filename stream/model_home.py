"""A model home: installed artifact versions, the `current` link workers load, and the history.

```
HOME/
  versions/<version>/   complete artifact directories, never changed once installed
  current -> versions/<version>   a relative symlink: point workers at HOME/current
  shadow -> versions/<version>    the candidate workers run beside it, never routed by
                                  (`--shadow-classifier HOME/shadow`; `promote --shadow`)
  history.jsonl         one JSON line per promote or rollback
```

A worker reads the version through `current` and loads from the directory the link resolves to
(stream.models), so swapping the link, which `activate` does atomically (a new link renamed
onto the old one), never mixes the files of two versions. Installing copies a candidate into a
hidden temporary directory beside the versions and renames it into place, so a version
directory is complete or absent.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from schemas.artifact import read_manifest
from schemas.errors import TextrouteError
from schemas.manifest import ModelManifest
from stream.errors import StreamError

VERSIONS_DIR = "versions"
CURRENT_LINK = "current"
SHADOW_LINK = "shadow"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
PROMOTE = "promote"
SHADOW = "shadow"
ROLLBACK = "rollback"

#: A version must make one plain directory name (manifest versions are UTC timestamps).
_VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}")


class ModelHomeError(StreamError):
    """The model home cannot do what was asked: a broken layout, an unknown version, a
    version installed twice with different files, or a history that disagrees with `current`."""


class NothingToRollBackError(ModelHomeError):
    """No version was active before the current one (or none is active at all)."""


@dataclass(frozen=True)
class HistoryEntry:
    """One line of history.jsonl."""

    time: datetime
    action: str
    from_version: str | None
    to_version: str
    gates: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(
            {
                "time": self.time.isoformat(),
                "action": self.action,
                "from_version": self.from_version,
                "to_version": self.to_version,
                "gates": self.gates,
            },
            sort_keys=False,
        )

    @classmethod
    def from_json(cls, line: str, where: str) -> HistoryEntry:
        try:
            raw = json.loads(line)
            return cls(
                time=datetime.fromisoformat(raw["time"]),
                action=str(raw["action"]),
                from_version=raw.get("from_version"),
                to_version=str(raw["to_version"]),
                gates=list(raw.get("gates") or []),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelHomeError(f"{where}: not a history entry ({exc}); fix or remove it") from exc


@dataclass(frozen=True)
class InstalledVersion:
    """A directory under versions/, with its manifest (None and a problem when unreadable)."""

    version: str
    path: Path
    active: bool
    manifest: ModelManifest | None
    problem: str | None = None


def check_version_name(version: str) -> None:
    """Refuse a version that cannot be one directory name under versions/."""
    if not _VERSION_NAME.fullmatch(version):
        raise ModelHomeError(
            f"version {version!r} cannot name a directory of the model home (letters, digits "
            "and . _ + : - only, starting with a letter or digit); set another version in the "
            "artifact's manifest"
        )


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rollback_stack(entries: Sequence[HistoryEntry]) -> list[str]:
    """The versions made active one over the other, oldest first, as the history replays:
    a promote pushes its version, a rollback pops back to the one below."""
    stack: list[str] = []
    for entry in entries:
        if entry.action == PROMOTE:
            # A home whose first version was linked by hand: that one is below the promoted.
            if entry.from_version is not None and (not stack or stack[-1] != entry.from_version):
                stack.append(entry.from_version)
            stack.append(entry.to_version)
        elif entry.action == ROLLBACK:
            if stack:
                stack.pop()
            if not stack or stack[-1] != entry.to_version:
                stack.append(entry.to_version)
    return stack


class ModelHome:
    """The model home at `root` (created on the first install)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS_DIR

    @property
    def current_link(self) -> Path:
        """The directory workers are pointed at."""
        return self.root / CURRENT_LINK

    @property
    def shadow_link(self) -> Path:
        """The candidate workers shadow (run beside the active model, never routed by)."""
        return self.root / SHADOW_LINK

    @property
    def history_path(self) -> Path:
        return self.root / HISTORY_FILE

    def version_dir(self, version: str) -> Path:
        check_version_name(version)
        return self.versions_dir / version

    # -- reading ---------------------------------------------------------------------------

    def active_version(self) -> str | None:
        """The version `current` points at; None when there is no `current` yet."""
        link = self.current_link
        if not link.is_symlink():
            if link.exists():
                raise ModelHomeError(
                    f"{link} is a {'directory' if link.is_dir() else 'file'}, not a symlink to "
                    f"{VERSIONS_DIR}/<version>; move it away (install it with `textroute "
                    "promote`) so the home can switch versions atomically"
                )
            return None
        target = link.readlink()
        if target.is_absolute() or target.parent != Path(VERSIONS_DIR):
            raise ModelHomeError(
                f"{link} points at {target}, not at {VERSIONS_DIR}/<version> inside the home; "
                "promote a version to repair it"
            )
        return target.name

    def active_manifest(self) -> ModelManifest | None:
        """The manifest of the active version (read through `current`), None without one."""
        version = self.active_version()
        if version is None:
            return None
        if not self.version_dir(version).is_dir():
            raise ModelHomeError(
                f"{self.current_link} points at version {version}, which is not installed in "
                f"{self.versions_dir}; promote or roll back to an installed version"
            )
        return read_manifest(self.current_link, verify=False)

    def history(self) -> list[HistoryEntry]:
        """Every entry of history.jsonl, oldest first (none for a new home)."""
        if not self.history_path.is_file():
            return []
        lines = self.history_path.read_text(encoding="utf-8").splitlines()
        return [
            HistoryEntry.from_json(line, f"{self.history_path}:{number}")
            for number, line in enumerate(lines, start=1)
            if line.strip()
        ]

    def versions(self) -> list[InstalledVersion]:
        """The installed versions, oldest first (by their manifests' created_at)."""
        if not self.versions_dir.is_dir():
            return []
        active = self.active_version()
        out: list[InstalledVersion] = []
        for path in self.versions_dir.iterdir():
            if path.name.startswith(".") or not path.is_dir():
                continue  # an install in progress, or left behind by a crash
            try:
                manifest: ModelManifest | None = read_manifest(path, verify=False)
                problem = None
            except TextrouteError as exc:
                manifest, problem = None, f"{type(exc).__name__}: {exc}"
            out.append(InstalledVersion(path.name, path, path.name == active, manifest, problem))
        epoch = datetime.min.replace(tzinfo=timezone.utc)
        return sorted(
            out, key=lambda v: (v.manifest.created_at if v.manifest else epoch, v.version)
        )

    # -- changing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the home's lock: one promote or rollback at a time."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_FILE).open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def installed_conflict(self, manifest: ModelManifest) -> str | None:
        """Why `manifest`'s version cannot be installed (installed with other files), or None."""
        check_version_name(manifest.version)
        existing = self.versions_dir / manifest.version
        if not existing.exists():
            return None
        try:
            installed = read_manifest(existing, verify=False)
        except TextrouteError as exc:
            return f"{existing} exists but is no readable artifact ({exc}); remove it"
        if installed != manifest:
            return (
                f"version {manifest.version} is already installed in {self.root} with other "
                "files; give the candidate a new version"
            )
        return None

    def install(self, candidate: Path) -> tuple[str, bool]:
        """Copy the candidate artifact to versions/<version> (checksums verified before and
        after the copy); (version, whether it was copied). An identical version already
        installed is kept as it is; the same version with other files is an error."""
        manifest = read_manifest(candidate, verify=True)
        conflict = self.installed_conflict(manifest)
        if conflict is not None:
            raise ModelHomeError(conflict)
        final = self.version_dir(manifest.version)
        if final.exists():
            return manifest.version, False
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.versions_dir / f".install-{manifest.version}-{uuid.uuid4().hex[:8]}"
        try:
            # Hidden entries (an export's temporary directory) are no part of the artifact.
            shutil.copytree(candidate, tmp, ignore=shutil.ignore_patterns(".*"))
            copied = read_manifest(tmp, verify=True)
            if copied != manifest:
                raise ModelHomeError(f"{candidate} changed while it was being installed; try again")
            try:
                tmp.rename(final)
            except OSError:
                # Installed by someone else meanwhile: fine when it is the same artifact.
                conflict = self.installed_conflict(manifest)
                if conflict is not None or not final.is_dir():
                    raise ModelHomeError(
                        conflict or f"cannot install {candidate} as {final}"
                    ) from None
                return manifest.version, False
            _fsync_dir(self.versions_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return manifest.version, True

    def activate(self, version: str, *, link: str = CURRENT_LINK) -> None:
        """Point `current` (or the `shadow` link) at versions/<version> in one atomic rename
        (no history entry); the version's checksums are verified first, so the link never
        names a broken one."""
        target = self.version_dir(version)
        if not target.is_dir():
            raise ModelHomeError(f"version {version} is not installed in {self.versions_dir}")
        read_manifest(target, verify=True)
        self.active_version()  # refuses a `current` that is a real directory
        path = self.root / link
        if path.exists() and not path.is_symlink():
            raise ModelHomeError(f"{path} is not a symlink; move it away")
        tmp = self.root / f".{link}-{uuid.uuid4().hex[:8]}"
        # Relative, so the home may be mounted or moved elsewhere.
        tmp.symlink_to(f"{VERSIONS_DIR}/{version}")
        try:
            tmp.replace(path)  # os.replace: atomic
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)

    def record(self, entry: HistoryEntry) -> None:
        """Append one line to history.jsonl, flushed to disk."""
        with self.history_path.open("a", encoding="utf-8") as handle:
            handle.write(entry.to_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def promote(
        self,
        candidate: Path,
        *,
        expected_active: str | None,
        gates: Sequence[Mapping[str, Any]] = (),
    ) -> HistoryEntry:
        """Install the candidate, make it current and record it, under the home's lock.

        `expected_active` is the version the gates compared with: when another promote or
        rollback changed `current` meanwhile, nothing is done (ModelHomeError).
        """
        with self.locked():
            active = self.active_version()
            if active != expected_active:
                raise ModelHomeError(
                    f"the active version of {self.root} changed from {expected_active} to "
                    f"{active} while the gates ran; run the promotion again"
                )
            version = read_manifest(candidate, verify=False).version
            if version == active:
                raise ModelHomeError(f"version {version} is already active in {self.root}")
            version, _ = self.install(candidate)
            entry = HistoryEntry(_now(), PROMOTE, active, version, [dict(g) for g in gates])
            self.activate(version)
            self.record(entry)
            return entry

    def shadow(self, candidate: Path) -> HistoryEntry:
        """Install the candidate and point `shadow` at it: workers started with
        `--shadow-classifier HOME/shadow` load it beside the active model. `current` and the
        rollback history are untouched."""
        with self.locked():
            before = self.shadow_link.readlink().name if self.shadow_link.is_symlink() else None
            version, _ = self.install(candidate)
            entry = HistoryEntry(_now(), SHADOW, before, version)
            self.activate(version, link=SHADOW_LINK)
            self.record(entry)
            return entry

    def rollback(self) -> HistoryEntry:
        """Make the version active before the current one (per the history) current again."""
        if not self.root.is_dir():
            raise NothingToRollBackError(f"nothing to roll back: {self.root} does not exist")
        with self.locked():
            active = self.active_version()
            if active is None:
                raise NothingToRollBackError(
                    f"nothing to roll back: {self.root} has no active model"
                )
            stack = rollback_stack(self.history())
            if stack and stack[-1] != active:
                raise ModelHomeError(
                    f"{self.history_path} says {stack[-1]} is active, but {self.current_link} "
                    f"points at {active}; promote the version you want (textroute promote "
                    f"{self.versions_dir}/VERSION --home {self.root})"
                )
            if len(stack) < 2:
                raise NothingToRollBackError(
                    f"nothing to roll back to: no version was active in {self.root} before {active}"
                )
            target = stack[-2]
            entry = HistoryEntry(_now(), ROLLBACK, active, target)
            self.activate(target)
            self.record(entry)
            return entry
