"""textroute's errors: one root, one branch per layer.

Every error textroute raises on purpose is a TextrouteError; the CLI prints it as one line and
exits 2, the API answers it as JSON, anything else is a bug::

    TextrouteError
    ├── SchemaError          schemas: artifacts and their manifests
    │   └── ArtifactError    missing or invalid manifest, missing file, checksum, path outside
    ├── InferenceError       inference: settings, backends, artifacts it cannot serve
    │                        (ArtifactUnusableError is also an ArtifactError)
    ├── StreamError          stream: worker and broker settings, rules, records, the API
    └── TrainingError        training: data, configuration, loading, export gates

Each layer defines its branch beside its code (inference.errors, stream.errors,
training.errors); this module holds the root and the schemas' own errors.
"""

from __future__ import annotations


class TextrouteError(Exception):
    """Base class of every error textroute raises on purpose."""


class SchemaError(TextrouteError):
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
