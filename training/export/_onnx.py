"""Trace a Hugging Face model to ONNX, fuse its graph for ONNX Runtime and quantize it to int8."""

from __future__ import annotations

import inspect
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from schemas import TaskKind
from training.export.errors import ExportError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = structlog.get_logger(__name__)

# Every input name any BERT-family encoder may take; the model's forward() decides which apply.
_ENCODER_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# ONNX Runtime's fusion passes for encoders are all written against the BERT graph.
_PAIR_TASKS = (TaskKind.PAIR_CLASSIFICATION, TaskKind.QUESTION_ANSWERING)
_FUSABLE_MODEL_TYPES = {"bert", "distilbert", "roberta", "xlm-roberta", "electra", "camembert"}


def output_names(task: TaskKind) -> list[str]:
    """Graph outputs, named like the Hugging Face model outputs they come from."""
    if task is TaskKind.QUESTION_ANSWERING:
        return ["start_logits", "end_logits"]
    return ["logits"]


def input_names(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """Inputs in forward() order, which is the order the tracer binds positional args in."""
    accepted = inspect.signature(model.forward).parameters
    produced = set(tokenizer.model_input_names)
    names = [n for n in accepted if n in _ENCODER_INPUTS and n in produced]
    if "input_ids" not in names:
        raise ExportError(
            f"{type(model).__name__}.forward() takes no input_ids; only text encoders export"
        )
    return names


def export_fp32(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskKind,
    out: Path,
    *,
    opset: int,
) -> list[str]:
    """Write the fp32 ONNX graph with dynamic batch and sequence axes; returns the input names."""
    import torch

    # The eager attention graph: plain MatMul/Softmax ops, the ones measured in bench/RESULTS.md.
    model.set_attn_implementation("eager")
    module: Any = model  # torch's Module.eval() is untyped in this torch build
    module.eval()
    names = input_names(model, tokenizer)
    sample = tokenizer(
        ["a short text", "a somewhat longer text so the batch needs padding"],
        ["a pair", "for pair tasks"] if task in _PAIR_TASKS else None,
        padding=True,
        return_tensors="pt",
    )
    args = tuple(sample[n] for n in names)
    outputs = output_names(task)
    axes: dict[str, dict[int, str]] = {n: {0: "batch", 1: "sequence"} for n in names}
    per_token = task in (
        TaskKind.TOKEN_CLASSIFICATION,
        TaskKind.QUESTION_ANSWERING,
        TaskKind.CLASSIFY_AND_TAG,
    )
    for name in outputs:
        axes[name] = {0: "batch", 1: "sequence"} if per_token else {0: "batch"}
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # The tracer warns about Python branches on shapes; parity gates catch real breakage.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                args,
                str(out),
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:  # the tracer raises many unrelated types
        raise ExportError(f"torch.onnx.export failed for {type(model).__name__}: {exc}") from exc
    return names


def optimize(src: Path, dst: Path, config: Any) -> bool:
    """Fuse embeddings, LayerNorm and GELU (hardware-neutral level); False when not applicable."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    if getattr(config, "model_type", None) not in _FUSABLE_MODEL_TYPES:
        return False
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_heads", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "dim", 0))
    # Measured on MiniLM int8 (bench/onnx_profile.py; bench/RESULTS.md, "Kernels tried and left
    # out"): the fused SkipLayerNormalization, BiasGelu and QAttention CPU kernels
    # are slower than the plain ops they replace (the Q/K/V projections then quantize as
    # ordinary int8 matmuls); +24% texts/s on one thread.
    fusions = FusionOptions("bert")
    fusions.enable_attention = False
    fusions.enable_skip_layer_norm = False
    fusions.enable_bias_skip_layer_norm = False
    fusions.enable_bias_gelu = False
    try:
        optimized = optimize_model(
            str(src),
            model_type="bert",
            num_heads=heads,
            hidden_size=hidden,
            opt_level=1,
            optimization_options=fusions,
        )
        optimized.save_model_to_file(str(dst))
    except Exception as exc:  # fusion is an optimisation: the unfused graph still serves
        log.warning("export.fusion_skipped", error=repr(exc))
        return False
    return True


def quantize_int8(src: Path, dst: Path, *, per_channel: bool, reduce_range: bool) -> None:
    """Dynamic int8: weights (MatMul, Attention, embeddings) now, activations at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(
            src,
            dst,
            per_channel=per_channel,
            reduce_range=reduce_range,
            weight_type=QuantType.QInt8,
            # Fused com.microsoft ops defeat ONNX shape inference; their tensors are float.
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except Exception as exc:  # quantizer errors are plain RuntimeError/ValueError
        raise ExportError(f"int8 quantization of {src.name} failed: {exc}") from exc
