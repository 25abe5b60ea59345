"""`export_artifact`: ONNX fp32 + int8 files into an artifact, behind parity gates."""

from __future__ import annotations

import tempfile
from pathlib import Path

import structlog

from inference import load_lexical
from schemas import FileRole, ModelManifest, TaskKind
from schemas.artifact import with_files, write_manifest
from training.export import _heads, _onnx, _parity
from training.export.errors import ParityGateFailed, UnsupportedArtifactError
from training.export.gates import evaluate_all_gates, failure_message
from training.export.report import FAILED_REPORT_FILE, REPORT_FILE, ExportReport, ParityFigures
from training.export.sample import EvalSample
from training.export.settings import ExportSettings, GateSettings

FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"

log = structlog.get_logger(__name__)


def _weights_bytes(manifest: ModelManifest) -> int:
    return sum(f.size for f in manifest.files if f.role is FileRole.WEIGHTS)


def export_artifact(
    artifact_dir: Path | str,
    *,
    eval_data: EvalSample | None = None,
    tag_data: EvalSample | None = None,
    opset: int = 17,
    per_channel: bool = True,
    gates: GateSettings | None = None,
    sample: int = 512,
    reduce_range: bool = False,
    optimize: bool = True,
    batch_size: int = 32,
    seed: int = 0,
) -> ExportReport:
    """Export the artifact to ONNX (fp32, then int8), check the parity gates, record the files.

    The files and export_report.json enter the artifact and its manifest only when every gate
    passes (or gates are disabled); otherwise the artifact is left as it was, the figures go to
    export_report.failed.json and ParityGateFailed (a training.errors.GateFailed) is raised.

    A classify-and-tag artifact is gated per head: its classes on `eval_data` (labelled texts)
    and its tags on `tag_data` (CoNLL sentences); each defaults to the held-out data named in
    its training config, else the built-in sample.
    """
    from training.artifact import load_artifact

    settings = ExportSettings(
        opset=opset,
        per_channel=per_channel,
        reduce_range=reduce_range,
        optimize=optimize,
        sample=sample,
        batch_size=batch_size,
        seed=seed,
    )
    gates = gates if gates is not None else GateSettings()
    root = Path(artifact_dir)
    model, tokenizer, manifest = load_artifact(root)
    if not tokenizer.is_fast:
        raise UnsupportedArtifactError(
            f"{root}: the tokenizer has no fast (tokenizer.json) version, which the stream's "
            "ONNX path needs; re-save the model with a fast tokenizer"
        )
    measured = _heads.heads(manifest, eval_data, tag_data)
    # A multi-label model's gate reads its labels as served: its lexical expert fused.
    lexical = load_lexical(root, manifest) if manifest.task is TaskKind.MULTI_LABEL else None
    outputs = _onnx.output_names(manifest.task)
    with tempfile.TemporaryDirectory(dir=root, prefix=".export-") as tmp_name:
        tmp = Path(tmp_name)
        raw, fp32, int8 = tmp / "raw.onnx", tmp / FP32_FILE, tmp / INT8_FILE
        log.info("export.onnx", artifact=str(root), opset=settings.opset)
        names = _onnx.export_fp32(model, tokenizer, manifest.task, raw, opset=settings.opset)
        optimized = settings.optimize and _onnx.optimize(raw, fp32, model.config)
        if not optimized:
            raw.replace(fp32)
        _onnx.quantize_int8(
            fp32, int8, per_channel=settings.per_channel, reduce_range=settings.reduce_range
        )
        figures: dict[str, ParityFigures] = {}
        for head in measured:
            data = head.sample.subsample(settings.sample, seed=settings.seed)
            batches = _parity.encode(data, tokenizer, head.manifest, names, settings.batch_size)
            prefix = f"{head.name}: " if head.name else ""
            runs = (
                _parity.run_torch(model, batches, outputs),
                _parity.run_onnx(fp32, batches, outputs, f"{prefix}ONNX fp32"),
                _parity.run_onnx(int8, batches, outputs, f"{prefix}ONNX int8"),
            )
            torch_out, fp32_out, int8_out = ([head.select(o) for o in run] for run in runs)
            figures[head.name] = _parity.measure(
                data, head.manifest, batches, torch_out, fp32_out, int8_out, lexical=lexical
            )
        fp32_bytes, int8_bytes = fp32.stat().st_size, int8.stat().st_size
        report = ExportReport(
            artifact=str(root),
            opset=settings.opset,
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            optimized=optimized,
            weights_bytes=_weights_bytes(manifest),
            fp32_bytes=fp32_bytes,
            int8_bytes=int8_bytes,
            size_reduction=1.0 - int8_bytes / fp32_bytes,
            size_target=gates.size_target,
            parity=figures.get(""),
            heads={name: f for name, f in figures.items() if name},
            gates=evaluate_all_gates(figures, gates),
            gates_enabled=gates.enabled,
        )
        if not report.passed and gates.enabled:
            (root / FAILED_REPORT_FILE).write_text(report.model_dump_json(indent=2) + "\n")
            raise ParityGateFailed(failure_message(report), report)
        fp32.replace(root / FP32_FILE)
        int8.replace(root / INT8_FILE)
    (root / REPORT_FILE).write_text(report.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (root / FAILED_REPORT_FILE).unlink(missing_ok=True)
    manifest = with_files(
        manifest,
        root,
        {
            root / FP32_FILE: FileRole.ONNX_FP32,
            root / INT8_FILE: FileRole.ONNX_INT8,
            root / REPORT_FILE: FileRole.REPORT,
        },
    )
    write_manifest(manifest, root)
    if not report.size_target_met:
        log.warning(
            "export.size_target_missed",
            size_reduction=round(report.size_reduction, 3),
            target=report.size_target,
        )
    log.info(
        "export.done",
        artifact=str(root),
        fp32_mb=round(fp32_bytes / 1e6, 2),
        int8_mb=round(int8_bytes / 1e6, 2),
        size_reduction=round(report.size_reduction, 3),
        passed=report.passed,
    )
    return report
