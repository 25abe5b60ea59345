"""What evaluating several artifacts side by side shares: loading them onto one label list,
naming their reports, and the summary file."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from schemas import ModelManifest
from training.artifact import load_artifact
from training.errors import ConfigError

Loaded = tuple[Any, Any, ModelManifest]
SUMMARY_FILE = "summary.json"


def load_members(
    models: Sequence[Path],
    view: Callable[[Path, Any, Any, ModelManifest], Loaded],
    *,
    what: str,
    rule: str,
) -> tuple[list[Loaded], list[str]]:
    """Each artifact loaded (checksums verified) and seen through `view` (e.g. the class half
    of a classify-and-tag model), and the labels they all share; a member with other labels is
    a ConfigError naming `what` they are and the `rule` they break."""
    if not models:
        raise ConfigError("give at least one model artifact directory")
    loaded = [view(m, *load_artifact(m)) for m in models]
    labels = loaded[0][2].labels
    for path, (_, _, manifest) in zip(models, loaded, strict=True):
        if manifest.labels != labels:
            raise ConfigError(
                f"{path} has {what} {manifest.labels}, {models[0]} has {labels}: {rule}"
            )
    return loaded, labels


def report_key(path: Path, position: int, taken: dict[str, Any]) -> str:
    """The report directory name of one member: its artifact name, made unique in this run so
    a model given twice never writes into its own artifact."""
    return path.name if path.name not in taken else f"{path.name}-{position + 1}"


def write_summary(output: Path, results: dict[str, dict[str, Any]], keys: Sequence[str]) -> None:
    """output/summary.json: the headline `keys` of every member and ensemble."""
    output.mkdir(parents=True, exist_ok=True)
    summary = {k: {m: v[m] for m in keys} for k, v in results.items()}
    (output / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
