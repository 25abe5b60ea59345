"""OnnxBackend on named execution providers (bench/gpu_inference.py's ONNX Runtime CUDA path):
the CPU default is unchanged, and a provider ONNX Runtime cannot start is an error rather than
a silent fall-back to CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from inference import ModelLoadFailedError
from inference.onnx_backend import OnnxBackend, provider_session


def _double_graph(path: Path) -> Path:
    """logits = 2 * x."""
    graph = helper.make_graph(
        [
            helper.make_node("Constant", [], ["two"], value_float=2.0),
            helper.make_node("Mul", ["x", "two"], ["logits"]),
        ],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_named_cpu_provider_runs_like_the_default_session(tmp_path: Path) -> None:
    graph = _double_graph(tmp_path / "double.onnx")
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    default = OnnxBackend(graph, name="default", threads=1)
    named = OnnxBackend(graph, name="named", threads=1, providers=["CPUExecutionProvider"])

    assert default.providers == named.providers == ["CPUExecutionProvider"]
    # Inputs the graph does not declare are left out, on either path.
    feeds = {"x": x, "attention_mask": np.ones((2, 3), dtype=np.int64)}
    np.testing.assert_array_equal(named(feeds)["logits"], default(feeds)["logits"])
    np.testing.assert_array_equal(named(feeds)["logits"], 2 * x)


def test_provider_options_are_passed_as_pairs(tmp_path: Path) -> None:
    graph = _double_graph(tmp_path / "double.onnx")
    session = provider_session(graph, [("CPUExecutionProvider", {})], threads=1)
    assert session.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.filterwarnings("ignore:Specified provider")  # onnxruntime's own, before falling back
def test_a_provider_that_cannot_start_is_an_error_not_a_cpu_fallback(tmp_path: Path) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    graph = _double_graph(tmp_path / "double.onnx")
    with pytest.raises(ModelLoadFailedError, match="CUDAExecutionProvider"):
        OnnxBackend(graph, name="cuda", providers=["CUDAExecutionProvider", "CPUExecutionProvider"])


def test_no_provider_is_refused(tmp_path: Path) -> None:
    graph = _double_graph(tmp_path / "double.onnx")
    with pytest.raises(ModelLoadFailedError, match="at least one"):
        OnnxBackend(graph, name="none", providers=[])
