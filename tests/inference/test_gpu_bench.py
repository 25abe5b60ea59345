"""bench/gpu_inference.py and bench/gpu_check.sh, the GPU check run on a lent GPU machine: here,
without a GPU, the same code runs on CPU on the tiny classifier and says that no GPU was found."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "gpu_inference.py"
SCRIPT = REPO / "bench" / "gpu_check.sh"


def _bench_module(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """bench/gpu_inference.py as a module (bench/ is no package); its dataclasses need it in
    sys.modules while it loads."""
    spec = importlib.util.spec_from_file_location("bench_gpu_inference", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def _hide_gpus() -> dict[str, str]:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TEXTROUTE_INFERENCE_THREADS": "1"}


def test_cpu_run_measures_every_engine_it_can_and_says_no_gpu(
    tiny_classifier_artifact: Path, tmp_path: Path
) -> None:
    out = tmp_path / "gpu.json"
    engines = ["torch-fp32", "torch-fp16", "torch-bf16", "ort-cuda-fp32", "ort-cpu-fp32"]
    engines.append("ort-cpu-ep-fp32")  # the provider path (swapped backend), on CPU
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--classifier", str(tiny_classifier_artifact),
         "--device", "cpu", "--batches", "4,8", "--texts", "16", "--repeat", "1",
         "--threads", "1", "--engines", ",".join(engines), "--json", str(out)],
        cwd=REPO, env=_hide_gpus(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NO GPU" in proc.stdout
    report = json.loads(out.read_text(encoding="utf-8"))

    assert report["device"] == "cpu"
    assert report["gpu_found"] is False
    assert "NO GPU" in report["note"]
    ran = {r["engine"] for r in report["results"]}
    assert {"torch-fp32", "ort-cpu-fp32", "ort-cpu-ep-fp32"} <= ran
    # Every engine asked for either ran or says why not; fp16 cannot run on CPU.
    assert ran | set(report["skipped"]) == set(engines)
    assert "CUDA GPU" in report["skipped"]["torch-fp16"]
    for result in report["results"]:
        assert result["texts_per_s"] > 0
        assert result["seconds"] > 0
        assert 0 < result["p50_ms"] <= result["p99_ms"]
        assert result["peak_gpu_mb"] is None
    for engine in ran:
        assert {r["batch"] for r in report["results"] if r["engine"] == engine} == {4, 8}
    backends = {r["engine"]: r["backend"] for r in report["results"]}
    assert backends["torch-fp32"] == "torch-cpu-fp32"
    assert backends["ort-cpu-ep-fp32"] == "onnx-cpu-fp32"
    # The swapped-in backend answers exactly as the product's ONNX fp32 session does.
    assert report["parity"]["ort-cpu-ep-fp32"]["label_agreement"] == 1.0
    assert report["parity"]["ort-cpu-ep-fp32"]["max_score_diff"] < 1e-6
    assert report["versions"]["onnxruntime_providers"]


def test_minilm_builder_makes_a_servable_artifact_from_config_and_tokenizer_alone(
    tiny_base_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What runs on the GPU machine, where only MiniLM's config and tokenizer travel: a random
    encoder of the base's shape, exported, that load_predictor serves."""
    from inference import InferenceSettings, load_predictor

    gpu_inference = _bench_module(monkeypatch)

    base = tmp_path / "base"
    shutil.copytree(tiny_base_model, base)
    for weights in base.glob("*.safetensors"):
        weights.unlink()
    made = gpu_inference.build_minilm(tmp_path / "models", base, ["classifier"])

    artifact = made["classifier"]
    assert (artifact / "model.onnx").is_file()
    assert "random init" in json.loads((artifact / "manifest.json").read_text())["base_model"]
    predictor = load_predictor(artifact, InferenceSettings(backend="onnx", threads=1))
    (answer,) = predictor.classify(["the team won the game"])
    assert getattr(answer, "label", None) in gpu_inference.CLASSES


def test_gpu_check_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run(
        [shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stdout


def test_gpu_check_script_prints_its_usage() -> None:
    proc = subprocess.run(
        ["bash", str(SCRIPT), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert "--prepare" in proc.stdout
    assert "bash bench/gpu_check.sh [MODEL_DIR]" in proc.stdout
