"""Errors raised when reading or validating shared artifacts."""

from __future__ import annotations


class SchemaError(Exception):
    """Base class for errors of the shared schemas package."""


class ArtifactError(SchemaError):
    """A model artifact directory cannot be used as it is."""


class ManifestMissing(ArtifactError):
    """The directory has no manifest.json: it is not a textroute model artifact."""


class ManifestInvalid(ArtifactError):
    """manifest.json exists but does not parse or does not match the schema."""


class ArtifactFileMissing(ArtifactError):
    """A file named in the manifest is not in the artifact directory."""


class ChecksumMismatch(ArtifactError):
    """A file's sha256 differs from the manifest: the file is corrupt or was changed."""


class ArtifactPathOutside(ArtifactError):
    """A file the manifest names resolves outside the artifact directory (e.g. by a symlink)."""
