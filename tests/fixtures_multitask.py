"""Session fixtures: a tiny classify-and-tag artifact trained by `train_multitask`, then exported.

Generated data only: topic texts (tests/fixtures_artifacts.py) for the classes, sentences with
people, places and organisations for the tags. `tiny_multitask_artifact` is shared by the
session: copy it before changing any file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from training.tiny import (
    build_tiny_multitask,
    tagged_sentences,
    write_multitask_data,
    write_tagged_conll,
    write_topics_csv,
)

__all__ = [
    "build_tiny_multitask",
    "tagged_sentences",
    "write_multitask_data",
    "write_tagged_conll",
    "write_topics_csv",
]


@pytest.fixture(scope="session")
def tiny_multitask_trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained tiny classify-and-tag artifact (topics + PER/LOC/ORG), not exported."""
    return build_tiny_multitask(tmp_path_factory.mktemp("multitask"))


@pytest.fixture(scope="session")
def tiny_multitask_artifact(
    tiny_multitask_trained: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny classify-and-tag artifact exported to ONNX fp32 + int8 with its default gate
    data (the held-out texts and sentences of its training config). Read-only."""
    from training.export import export_artifact

    out = tmp_path_factory.mktemp("exported") / "tiny-multitask"
    shutil.copytree(tiny_multitask_trained, out)
    export_artifact(out)
    return out
