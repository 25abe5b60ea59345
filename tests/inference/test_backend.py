"""Backend choice: auto picks torch only with CUDA, precisions map onto what each backend runs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from inference import (
    BackendUnavailableError,
    InferenceConfigError,
    InferenceSettings,
    plan_backend,
)
from inference import backend as backend_module


@pytest.fixture
def bf16_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "_cuda_bf16", lambda: True)


def test_auto_without_cuda_is_onnx_int8() -> None:
    plan = plan_backend(InferenceSettings(), cuda=False)
    assert (plan.kind, plan.precision, plan.name) == ("onnx", "int8", "onnx-int8")


def test_auto_with_cuda_is_torch_in_bf16_when_the_gpu_supports_it(bf16_gpu: None) -> None:
    plan = plan_backend(InferenceSettings(), cuda=True)
    assert plan.name == "torch-cuda-bf16"


def test_auto_with_cuda_without_bf16_is_torch_fp16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backend_module, "_cuda_bf16", lambda: False)
    assert plan_backend(InferenceSettings(), cuda=True).name == "torch-cuda-fp16"


def test_auto_keeps_an_explicit_gpu_precision_on_a_gpu() -> None:
    settings = InferenceSettings(precision="fp16")
    assert plan_backend(settings, cuda=True).name == "torch-cuda-fp16"


def test_auto_falls_back_to_onnx_int8_when_a_gpu_precision_has_no_gpu() -> None:
    plan = plan_backend(InferenceSettings(precision="bf16"), cuda=False)
    assert plan.name == "onnx-int8"


def test_explicit_onnx_with_a_gpu_precision_is_a_config_error() -> None:
    with pytest.raises(InferenceConfigError, match="int8 or fp32, not fp16"):
        plan_backend(InferenceSettings(backend="onnx", precision="fp16"), cuda=True)


def test_torch_on_cpu_runs_fp32_for_int8_and_refuses_fp16() -> None:
    assert plan_backend(InferenceSettings(backend="torch"), cuda=False).name == "torch-cpu-fp32"
    with pytest.raises(InferenceConfigError, match="needs a CUDA GPU"):
        plan_backend(InferenceSettings(backend="torch", precision="fp16"), cuda=False)


def test_torch_backend_without_torch_installed_says_to_use_onnx(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real(name, *a),
    )
    with pytest.raises(BackendUnavailableError, match="TEXTROUTE_INFERENCE_BACKEND=onnx"):
        plan_backend(InferenceSettings(backend="torch"))
    assert plan_backend(InferenceSettings()).name == "onnx-int8"


def test_settings_come_from_textroute_inference_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTROUTE_INFERENCE_BACKEND", "torch")
    monkeypatch.setenv("TEXTROUTE_INFERENCE_PRECISION", "bf16")
    monkeypatch.setenv("TEXTROUTE_INFERENCE_MAX_BATCH", "8")
    settings = InferenceSettings()
    assert (settings.backend, settings.precision, settings.max_batch) == ("torch", "bf16", 8)


def test_onnx_without_spinning_threads_gives_the_same_answers(
    tiny_classifier_artifact: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from inference import load_predictor

    texts = ["stock market profit bank", "team win season coach"]
    labels = {}
    for spin in ("1", "0"):
        monkeypatch.setenv("TEXTROUTE_INFERENCE_SPIN", spin)
        settings = InferenceSettings()
        assert settings.spin is (spin == "1")
        predictor = load_predictor(tiny_classifier_artifact, settings)  # type: ignore[arg-type]
        labels[spin] = [c.label for c in predictor.classify(texts)]  # type: ignore[union-attr]
    assert labels["0"] == labels["1"]


_ASK_CUDA = """
import sys
from inference import backend
backend.GPU_DEVICE_NODES = tuple(sys.argv[1:])
print(backend.cuda_available(), "torch" in sys.modules)
"""


def _ask_cuda(*nodes: str) -> str:
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", _ASK_CUDA, *nodes],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="GPU device nodes are Linux's")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch installed")
def test_auto_does_not_import_torch_on_a_machine_without_a_gpu_driver(tmp_path: Path) -> None:
    # Importing torch to hear "no CUDA" cost every CPU worker about 200 MB resident.
    assert _ask_cuda(str(tmp_path / "no-such-device")) == "False False"
    # With a driver's node present, torch is the one asked (whatever it answers here).
    node = tmp_path / "nvidiactl"
    node.touch()
    assert _ask_cuda(str(node)).split()[1] == "True"
