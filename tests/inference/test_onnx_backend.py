"""The ONNX Runtime session the stream serves with: its options and the fusions it leaves out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference.onnx_backend import cpu_session

HIDDEN = 8


def _residual_layernorm_graph(path: Path) -> Path:
    """x + skip, then LayerNormalization: the pattern ONNX Runtime would fuse into
    SkipLayerNormalization."""
    ones = numpy_helper.from_array(np.ones(HIDDEN, dtype=np.float32), "gamma")
    zeros = numpy_helper.from_array(np.zeros(HIDDEN, dtype=np.float32), "beta")
    shape = ["batch", "sequence", HIDDEN]
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "skip"], ["sum"]),
            helper.make_node("LayerNormalization", ["sum", "gamma", "beta"], ["y"], axis=-1),
        ],
        "residual_layernorm",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("skip", TensorProto.FLOAT, shape),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [ones, zeros],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_served_session_keeps_add_and_layernorm_unfused(tmp_path: Path) -> None:
    graph = _residual_layernorm_graph(tmp_path / "graph.onnx")
    optimized = tmp_path / "optimized.onnx"
    session = cpu_session(graph, threads=1, save_optimized=optimized)

    ops = {node.op_type for node in onnx.load(str(optimized)).graph.node}
    assert "SkipLayerNormalization" not in ops
    assert {"Add", "LayerNormalization"} <= ops
    x = np.random.default_rng(0).standard_normal((2, 3, HIDDEN)).astype(np.float32)
    (y,) = session.run(["y"], {"x": x, "skip": x})
    np.testing.assert_allclose(y.mean(axis=-1), 0.0, atol=1e-5)
    np.testing.assert_allclose(y.std(axis=-1), 1.0, atol=1e-2)
