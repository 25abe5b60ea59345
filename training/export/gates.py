"""The parity gates: thresholds applied to the measured figures, and the failure message."""

from __future__ import annotations

from training.export.report import ExportReport, GateResult, ParityFigures
from training.export.settings import GateSettings


def evaluate_gates(parity: ParityFigures, gates: GateSettings) -> list[GateResult]:
    """One result per gate that applies to the figures (metric gates need labelled data)."""
    results = [
        GateResult(
            name="max_logit_diff (fp32 ONNX vs PyTorch)",
            value=parity.max_logit_diff,
            limit=gates.max_logit_diff,
            passed=parity.max_logit_diff <= gates.max_logit_diff,
        ),
        GateResult(
            name="argmax_agreement (int8 vs fp32)",
            value=parity.argmax_agreement,
            limit=gates.min_argmax_agreement,
            passed=parity.argmax_agreement >= gates.min_argmax_agreement,
        ),
    ]
    drop = parity.metric_drop_points
    if drop is not None:
        limits = {"f1": gates.max_f1_drop, "f1_micro": gates.max_micro_f1_drop}
        limit = limits.get(parity.metric or "", gates.max_accuracy_drop)
        results.append(
            GateResult(
                name=f"{parity.metric}_drop_points (fp32 - int8)",
                value=drop,
                limit=limit,
                passed=drop <= limit,
            )
        )
    return results


def evaluate_all_gates(figures: dict[str, ParityFigures], gates: GateSettings) -> list[GateResult]:
    """The gates of every head, named after their head ('ner: f1_drop_points ...')."""
    return [
        result.model_copy(update={"name": f"{head}: {result.name}"}) if head else result
        for head, parity in figures.items()
        for result in evaluate_gates(parity, gates)
    ]


def failure_message(report: ExportReport) -> str:
    """Every gate with its figure and limit, failed ones first, plus what to try next."""
    lines = [f"export of {report.artifact} failed its parity gates:"]
    for gate in sorted(report.gates, key=lambda g: g.passed):
        status = "PASS" if gate.passed else "FAIL"
        lines.append(f"  {status} {gate.name}: {gate.value:.6g} (limit {gate.limit:.6g})")
    for head, p in report.measured().items():
        lines.append(
            f"  {head + ': ' if head else ''}on {p.samples} examples of {p.data_source}; "
            f"{p.metric or 'metric'} torch={p.metric_torch} fp32={p.metric_fp32} "
            f"int8={p.metric_int8}"
        )
    lines.append(
        "The model was not changed. Try per-channel quantization (--per-channel), "
        "--reduce-range, more evaluation data (--sample), or --no-gates to inspect the files."
    )
    return "\n".join(lines)
