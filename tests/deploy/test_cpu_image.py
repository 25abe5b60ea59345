"""The CPU image's promise: the API serves with only deploy/requirements-cpu.txt installed.

Docker cannot build here, so the image's environment is imitated: every package that pyproject
lists but requirements-cpu.txt leaves out (torch, transformers, ...) is made unimportable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

# Python 3.11+; the images run 3.11.
tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS_CPU = ROOT / "deploy" / "requirements-cpu.txt"

BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv.pop(1).split(","))
class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is not installed in the CPU image", name=name)
        return None
sys.meta_path.insert(0, NotInImage())
"""

SERVE_AND_CALL = """
import json, time
import httpx
from stream.api import ApiSettings, BackgroundServer

settings = ApiSettings(
    host="127.0.0.1", port=0, classifier_dir=sys.argv[1], ner_dir=sys.argv[2],
    log_level="warning", log_json=False, access_log=False, reload_interval_s=0,
)
message = {"kind": "ticket", "id": "t-9", "customer": "acme", "body": "john smith in paris"}
with BackgroundServer(settings) as server:
    deadline = time.monotonic() + 60
    while httpx.get(server.url + "/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    routed = httpx.post(server.url + "/v1/route", json={"message": message}, timeout=30)
print(json.dumps({
    "status": routed.status_code,
    "body": routed.json(),
    "imported": sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED),
}))
"""


def requirement_names(lines: list[str]) -> set[str]:
    return {
        canonicalize_name(Requirement(line).name)
        for line in lines
        if line.strip() and not line.lstrip().startswith("#")
    }


def modules_not_in_cpu_image() -> list[str]:
    """Top-level modules of the project's dependencies that requirements-cpu.txt leaves out."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = requirement_names(pyproject["project"]["dependencies"])
    left_out = declared - requirement_names(REQUIREMENTS_CPU.read_text().splitlines())
    return sorted(
        module
        for module, dists in packages_distributions().items()
        if any(canonicalize_name(d) in left_out for d in dists)
    )


def run_without(blocked: list[str], code: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTROUTE_")}
    env["TEXTROUTE_INFERENCE_BACKEND"] = "onnx"
    return subprocess.run(
        [sys.executable, "-c", BLOCKER + code, ",".join(blocked), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cpu_requirements_leave_out_torch_and_the_training_stack() -> None:
    blocked = modules_not_in_cpu_image()
    assert {"torch", "transformers"} <= set(blocked)
    assert "onnxruntime" not in blocked and "tokenizers" not in blocked


@pytest.mark.integration
def test_api_routes_with_onnx_when_torch_and_transformers_are_absent(
    tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    blocked = modules_not_in_cpu_image()
    proc = run_without(
        blocked, SERVE_AND_CALL, str(tiny_classifier_artifact), str(tiny_ner_artifact)
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["status"] == 200, report["body"]
    routing = report["body"]["results"][0]["routing"]
    assert routing["classifier"]["backend"].startswith("onnx")
    assert routing["route"]
    assert report["imported"] == []


def test_textroute_commands_the_images_run_start_without_torch_and_transformers() -> None:
    code = (
        "from stream.cli import app\n"
        "for command in ('serve', 'worker', 'produce'):\n"
        "    app([command, '--help'], standalone_mode=False)\n"
    )
    proc = run_without(modules_not_in_cpu_image(), code)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for flag in ("--classifier", "--bootstrap", "--samples"):
        assert flag in proc.stdout
