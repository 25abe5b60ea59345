"""bench/ scripts as modules: bench/ is no package and its scripts import each other by bare
name (`plots`, `stream_throughput`), as they do when run as `python bench/NAME.py`."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
BenchModule = Callable[[str], ModuleType]
#: The bench scripts each script imports (at load or when it draws), loaded before it.
IMPORTS = {
    "memory": ("stream_throughput",),
    "stream_throughput": ("plots",),
    "inference_speed": ("plots", "timing"),
    "text_length": ("plots", "timing"),
}


@pytest.fixture
def bench_module(monkeypatch: pytest.MonkeyPatch) -> BenchModule:
    """Load bench/NAME.py under its bare name; sys.modules holds it (its dataclasses and the
    scripts importing it need that) for the test only."""

    def load(name: str) -> ModuleType:
        if name in sys.modules:
            return sys.modules[name]
        for imported in IMPORTS.get(name, ()):
            load(imported)
        spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, module)
        spec.loader.exec_module(module)
        return module

    return load
