"""`textroute train multilabel`: fine-tune a multi-label classifier (a sigmoid per label)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from training._cli_options import (
    EvalDataOpt,
    EvalLimitOpt,
    EvalSplitOpt,
    LimitOpt,
    SplitOpt,
    TextColumnsOpt,
    split_csv,
)
from training._hp_options import with_hyperparameters
from training.models import DEFAULT_BASE_MODEL
from training.tasks_cli import (
    BaseModelOpt,
    NameOpt,
    OutputOpt,
    ResumeOpt,
    WorkDirOpt,
    _pct,
    _settings,
)

if TYPE_CHECKING:  # the trainer pulls in torch: keep `textroute --help` fast
    from training.trainer import Hyperparameters

Opt = typer.Option
_COLUMNS = ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss")


def print_multilabel_summary(metrics: dict[str, Any], *, title: str) -> None:
    """Micro/macro/samples F1, subset accuracy and Hamming loss of each model and split."""
    table = Table(title=title)
    table.add_column("model")
    table.add_column("split")
    for col in _COLUMNS:
        table.add_column(col, justify="right")
    fused = "fine-tuned+lexical" if "test_encoder_only" in metrics else "fine-tuned"
    for key, label, split in (
        ("validation", fused, "validation (tuned on)"),
        ("test_encoder_only", "fine-tuned", "test"),
        ("test", fused, "test"),
        ("baseline", "tfidf+one-vs-rest", ""),
    ):
        m = metrics.get(key)
        if m:
            where = split or str(m.get("evaluated_on", ""))
            table.add_row(label, where, *(_pct(m.get(c)) for c in _COLUMNS))
    Console().print(table)


@with_hyperparameters(lr=1e-4, epochs=4.0, include=("head_lr_scale",))
def multilabel_command(
    data: Annotated[
        str, typer.Argument(help="Training data: CSV/TSV/JSONL/parquet file or Hub dataset.")
    ],
    hp: Hyperparameters,
    text_column: TextColumnsOpt = None,
    label_column: Annotated[
        str, Opt(help="Label-set column: a list (JSONL), a JSON list, or names joined.")
    ] = "labels",
    label_separator: Annotated[
        str | None, Opt(help="Cut a label-set string into names at this, e.g. '|'.")
    ] = None,
    label_columns: Annotated[
        str | None, Opt(help="0/1 columns, one per label, comma-separated (instead).")
    ] = None,
    label_names: Annotated[
        str | None, Opt(help="The full label set in order, comma-separated.")
    ] = None,
    eval_data: EvalDataOpt = None,
    eval_text_column: Annotated[
        list[str] | None, Opt("--eval-text-column", help="Text column(s) of --eval-data.")
    ] = None,
    split: SplitOpt = "train",
    eval_split: EvalSplitOpt = "test",
    base_model: BaseModelOpt = DEFAULT_BASE_MODEL,
    output: OutputOpt = Path("models/multilabel"),
    name: NameOpt = "multilabel",
    work_dir: WorkDirOpt = None,
    pooling: Annotated[
        str, Opt(help="Head over the mean of the token vectors (mean) or over [CLS] (cls).")
    ] = "mean",
    limit: LimitOpt = None,
    eval_limit: EvalLimitOpt = None,
    validation_fraction: Annotated[
        float, Opt(help="Share of the training rows carved off for validation (seeded).")
    ] = 0.1,
    min_threshold_positives: Annotated[
        int, Opt(help="Validation positives a label needs for a threshold of its own.")
    ] = 5,
    baseline: Annotated[
        bool, Opt(help="Also train the TF-IDF + one-vs-rest logistic regression baseline.")
    ] = True,
    lexical: Annotated[
        bool, Opt(help="Fuse the baseline's log-odds with the encoder's if validation gains.")
    ] = True,
    resume: ResumeOpt = False,
) -> None:
    """Fine-tune a multi-label classifier (independent labels, a threshold each, tuned on
    validation) and write its artifact."""
    from training.pipelines.multilabel import MultiLabelConfig, train_multilabel

    cfg = _settings(
        MultiLabelConfig,
        locals(),
        text_columns=split_csv(text_column) or ["text"],
        eval_text_columns=split_csv(eval_text_column),
        label_columns=split_csv(label_columns),
        label_names=split_csv(label_names),
    )
    manifest = train_multilabel(cfg)
    print_multilabel_summary(
        manifest.metrics, title=f"{manifest.name} {manifest.version} -> {output}"
    )
