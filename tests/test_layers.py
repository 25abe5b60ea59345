"""The layers point one way: schemas -> inference -> stream and training, each package used
through its public face, no import cycles, no sys.path edits."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("schemas", "inference", "stream", "training")
#: What each package may import of the others (anything else is an upward or sideways edge).
ALLOWED = {
    "schemas": set(),
    "inference": {"schemas"},
    "stream": {"schemas", "inference"},
    "training": {"schemas", "inference"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path, *, module_level_only: bool) -> list[tuple[int, str]]:
    """(line, imported name) of every absolute import in `path`; `from a import b` gives both
    a and a.b, since b may be a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes: list[ast.AST] = []
    if module_level_only:
        for node in tree.body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                continue  # types only: never imported at run time
            nodes.append(node)
    else:
        nodes = list(ast.walk(tree))
    out = []
    for node in nodes:
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def test_each_package_imports_only_the_layers_below_it() -> None:
    offences = []
    for name, path in _modules().items():
        own = name.split(".")[0]
        for line, imported in _imports(path, module_level_only=False):
            top = imported.split(".")[0]
            if top in PACKAGES and top != own and top not in ALLOWED[own]:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert offences == []


def test_packages_use_each_other_through_their_public_face_only() -> None:
    offences = []
    for name, path in _modules().items():
        own = name.split(".")[0]
        for line, imported in _imports(path, module_level_only=False):
            parts = imported.split(".")
            if parts[0] in PACKAGES and parts[0] != own and any(p.startswith("_") for p in parts):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert offences == []


def test_no_module_imports_itself_back_through_a_cycle() -> None:
    modules = _modules()

    def owner(imported: str) -> str | None:
        while imported and imported not in modules:
            imported = imported.rpartition(".")[0]
        return imported or None

    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for _, imported in _imports(path, module_level_only=True):
            target = owner(imported)
            # A module importing its own package (or the package importing its modules, which
            # Python allows) is not a cycle between rooms.
            if target and target != name and not name.startswith(target + "."):
                graph[name].add(target)

    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for name in sorted(modules):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_every_stream_module_imports_without_the_training_package() -> None:
    # A serving install has no training package: importing `training` must fail, and every
    # stream module must still import.
    script = """
import importlib, pkgutil, sys
sys.modules["training"] = None  # `import training` now raises ImportError
import stream
failed = []
for info in pkgutil.walk_packages(stream.__path__, "stream."):
    if info.name.rsplit(".", 1)[-1] == "__main__":
        continue
    try:
        importlib.import_module(info.name)
    except Exception as exc:
        failed.append(f"{info.name}: {type(exc).__name__}: {exc}")
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


@pytest.mark.parametrize("folder", [*PACKAGES, "bench", "tests"])
def test_nothing_edits_sys_path(folder: str) -> None:
    offences = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != Path(__file__)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "sys.path" in line and not line.lstrip().startswith("#")
    ]
    assert offences == []
