"""`textroute export MODEL_DIR`: ONNX fp32 + int8 files for an artifact, behind parity gates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from training.export.report import ExportReport

console = Console(stderr=True)
Opt = typer.Option


def export_command(
    model_dir: Annotated[Path, typer.Argument(help="Artifact directory (with manifest.json).")],
    data: Annotated[
        str | None,
        Opt(
            "--data",
            help="Gate data: CSV/TSV/JSONL with the manifest's text columns and a label column; "
            "CoNLL .txt for NER; SQuAD .json for QA. Default: the manifest's eval data if it "
            "is on this machine, else a built-in sample (no accuracy gate).",
        ),
    ] = None,
    tag_data: Annotated[
        str | None,
        Opt(
            "--tag-data",
            help="classify-and-tag artifacts: CoNLL sentences gating the tags (--data gates the "
            "classes). Default: the held-out sentences of its training config, if here.",
        ),
    ] = None,
    label_column: Annotated[str, Opt(help="Label column of --data.")] = "label",
    sample: Annotated[int | None, Opt(help="Rows of the data the gates run on.")] = None,
    opset: Annotated[int | None, Opt(help="ONNX opset.")] = None,
    per_channel: Annotated[
        bool | None, Opt("--per-channel/--per-tensor", help="int8 weight scales.")
    ] = None,
    reduce_range: Annotated[
        bool | None, Opt("--reduce-range/--full-range", help="7-bit int8 weights.")
    ] = None,
    no_gates: Annotated[
        bool, Opt("--no-gates", help="Measure the figures but keep the files even if they fail.")
    ] = False,
    max_logit_diff: Annotated[float | None, Opt(help="Gate: fp32 ONNX vs PyTorch.")] = None,
    min_agreement: Annotated[float | None, Opt(help="Gate: int8 vs fp32 argmax.")] = None,
    max_accuracy_drop: Annotated[float | None, Opt(help="Gate: accuracy points.")] = None,
    max_f1_drop: Annotated[float | None, Opt(help="Gate: NER F1 points.")] = None,
    max_micro_f1_drop: Annotated[
        float | None, Opt(help="Gate: multi-label micro-F1 points.")
    ] = None,
) -> None:
    """Export MODEL_DIR to ONNX fp32 and int8, check the parity gates, record the files."""
    from schemas.artifact import read_manifest
    from training.export.export import export_artifact
    from training.export.sample import load_eval_sample
    from training.export.settings import ExportSettings, GateSettings

    settings = ExportSettings()
    overrides = {
        "max_logit_diff": max_logit_diff,
        "min_argmax_agreement": min_agreement,
        "max_accuracy_drop": max_accuracy_drop,
        "max_f1_drop": max_f1_drop,
        "max_micro_f1_drop": max_micro_f1_drop,
    }
    given: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    gates = GateSettings(**given, enabled=not no_gates)
    eval_data = tag_sample = None
    if data is not None or tag_data is not None:
        manifest = read_manifest(model_dir)
        if data is not None:
            eval_data = load_eval_sample(data, manifest, label_column=label_column)
        if tag_data is not None:
            tag_sample = load_eval_sample(tag_data, manifest)
    report = export_artifact(
        model_dir,
        eval_data=eval_data,
        tag_data=tag_sample,
        opset=opset if opset is not None else settings.opset,
        per_channel=per_channel if per_channel is not None else settings.per_channel,
        reduce_range=reduce_range if reduce_range is not None else settings.reduce_range,
        gates=gates,
        sample=sample if sample is not None else settings.sample,
        optimize=settings.optimize,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    Console().print(report_table(report))


def report_table(report: ExportReport) -> Table:
    """Sizes and gate figures as a rich table."""
    table = Table(title=f"export {report.artifact}")
    table.add_column("check")
    table.add_column("value", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("result")
    mb = 1e6
    table.add_row("PyTorch weights", f"{report.weights_bytes / mb:.2f} MB", "", "")
    table.add_row("ONNX fp32", f"{report.fp32_bytes / mb:.2f} MB", "", "")
    table.add_row(
        "ONNX int8",
        f"{report.int8_bytes / mb:.2f} MB (-{report.size_reduction:.0%})",
        f"-{report.size_target:.0%}",
        "ok" if report.size_target_met else "below target",
    )
    for gate in report.gates:
        table.add_row(
            gate.name, f"{gate.value:.6g}", f"{gate.limit:.6g}", "PASS" if gate.passed else "FAIL"
        )
    for head, p in report.measured().items():
        if p.metric is None:
            continue
        table.add_row(
            f"{head + ': ' if head else ''}{p.metric} torch / fp32 / int8",
            f"{p.metric_torch:.4f} / {p.metric_fp32:.4f} / {p.metric_int8:.4f}",
            "",
            f"{p.samples} rows",
        )
    return table


def register(app: typer.Typer) -> None:
    """Add `export` to the textroute CLI."""
    app.command("export")(export_command)
