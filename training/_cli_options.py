"""Command-line option types and parsing shared by the training commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import typer

#: Text column(s) joined into the model's input; repeatable (`-t title -t description`) and
#: comma-separated (`-t title,description`) alike, so neither spelling drops a column.
TextColumnsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--text-column", "-t", help="Text column(s), repeated or comma-separated; joined."
    ),
]
#: The same for `textroute evaluate`, where leaving it out reads the model's own columns.
EvalTextColumnsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--text-column",
        "-t",
        help="Text column(s), repeated or comma-separated; joined. Default: the columns the "
        "(first) model was trained on, from its manifest.",
    ),
]


#: Options the labelled-text training commands (classify, multilabel, distill) share.
EvalDataOpt = Annotated[
    str | None,
    typer.Option("--eval-data", help="Held-out test data (reported, never used to select)."),
]
SplitOpt = Annotated[str | None, typer.Option(help="Split of a Hub dataset for training.")]
EvalSplitOpt = Annotated[str | None, typer.Option(help="Split of a Hub dataset for --eval-data.")]
LimitOpt = Annotated[int | None, typer.Option(help="Use only the first N training rows.")]
EvalLimitOpt = Annotated[int | None, typer.Option(help="Use only the first N test rows.")]


def split_csv(value: str | Sequence[str] | None) -> list[str] | None:
    """Comma-separated value(s) as a list of names; None when nothing was given."""
    if not value:
        return None
    items = [value] if isinstance(value, str) else value
    names = [name.strip() for item in items for name in item.split(",") if name.strip()]
    return names or None
