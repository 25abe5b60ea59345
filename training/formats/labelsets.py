"""Texts with a set of label names each (multi-label): a list column, a separated string, or 0/1
columns."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from schemas import DataRef
from training.errors import DataError, EmptyLabels, UnknownLabel

_SHOWN_ROWS = 5
_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no", ""}


@dataclass(frozen=True)
class LabelSets:
    """Rows of text, each with the indexes (into `label_names`) of its labels, at least one."""

    texts: list[str]
    labels: list[list[int]]
    label_names: list[str]
    ref: DataRef = field(default_factory=lambda: DataRef(source="memory"))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int], split: str | None = None) -> LabelSets:
        return LabelSets(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=self.label_names,
            ref=self.ref.model_copy(
                update={"rows": len(indices), "split": split or self.ref.split}
            ),
        )

    def indicator(self) -> np.ndarray:
        """The (rows, labels) 0/1 matrix of the label sets."""
        out = np.zeros((len(self.labels), len(self.label_names)), dtype=np.int64)
        for row, labels in enumerate(self.labels):
            out[row, labels] = 1
        return out


def _names_in_cell(value: Any, separator: str | None) -> list[str]:
    """The label names of one cell: a list (JSON lines), a JSON list written as text (CSV), or a
    string cut at `separator` (a lone name without one)."""
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    text = str(value).strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except json.JSONDecodeError:
            parsed = None
        if isinstance(parsed, list):
            return _names_in_cell(parsed, separator)
    parts = text.split(separator) if separator else [text]
    return [p.strip() for p in parts if p.strip()]


def _flag(value: Any, column: str, row: int, source: str) -> bool:
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError(
        f"{source}: row {row + 1} has {value!r} in label column {column!r}; "
        "--label-columns need 0/1 values"
    )


def _raw_label_sets(
    frame: pd.DataFrame,
    source: str,
    *,
    label_column: str,
    label_separator: str | None,
    label_columns: Sequence[str] | None,
) -> list[list[str]]:
    if label_columns:
        return [
            [c for c in label_columns if _flag(frame[c].iloc[row], c, row, source)]
            for row in range(len(frame))
        ]
    return [_names_in_cell(v, label_separator) for v in frame[label_column].tolist()]


def load_label_sets(
    source: str,
    *,
    text_columns: Sequence[str],
    label_column: str = "labels",
    label_separator: str | None = None,
    label_columns: Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> LabelSets:
    """Load texts (joined from `text_columns`) with their label sets, read from `label_column`
    (a list, a JSON list, or names joined by `label_separator`) or from 0/1 `label_columns`
    (the column names are the labels).

    A row without any label is an EmptyLabels error naming the rows; with `label_names` given,
    a name outside them is an UnknownLabel error; without, the names are the sorted set seen.
    """
    from schemas.artifact import sha256_file
    from training.data import _check_non_empty, _join_text, _require_columns, read_table

    frame = read_table(source, split=split)
    label_cols = list(label_columns) if label_columns else [label_column]
    _require_columns(frame, [*text_columns, *label_cols], source)
    if limit is not None:
        frame = frame.iloc[:limit]
    if frame.empty:
        raise DataError(f"{source}: no rows to load")
    texts = _join_text(frame, text_columns)
    _check_non_empty(texts, source, "+".join(text_columns))
    raw = _raw_label_sets(
        frame,
        source,
        label_column=label_column,
        label_separator=label_separator,
        label_columns=label_columns,
    )
    empty = [i for i, names in enumerate(raw) if not names]
    if empty:
        shown = ", ".join(str(i + 1) for i in empty[:_SHOWN_ROWS])
        where = "the --label-columns" if label_columns else repr(label_column)
        raise EmptyLabels(
            f"{source}: {len(empty)} row(s) have no label in {where} "
            f"(rows {shown}{', ...' if len(empty) > _SHOWN_ROWS else ''}); every row needs at "
            "least one label: drop them or fix the labels"
        )
    if label_names:
        names = list(label_names)
    elif label_columns:
        names = list(label_columns)
    else:
        names = sorted({n for row in raw for n in row})
    index = {name: i for i, name in enumerate(names)}
    labels: list[list[int]] = []
    for row, row_names in enumerate(raw):
        unknown = [n for n in row_names if n not in index]
        if unknown:
            raise UnknownLabel(
                f"{source}: row {row + 1} has label(s) {unknown}, not in the label set of "
                f"{len(names)} labels; fix the row or pass the full --label-names"
            )
        labels.append(sorted({index[n] for n in row_names}))
    ref = DataRef(
        source=source,
        split=split,
        rows=len(texts),
        columns=[*text_columns, *label_cols],
        sha256=sha256_file(Path(source)) if Path(source).is_file() else None,
    )
    return LabelSets(texts=texts, labels=labels, label_names=names, ref=ref)


def carve_validation(data: LabelSets, *, fraction: float, seed: int) -> tuple[LabelSets, LabelSets]:
    """A seeded random validation split carved out of the training rows (never out of test).
    Not stratified: label sets rarely repeat often enough to stratify on."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(data))
    n_val = max(1, round(fraction * len(data)))
    val_idx, train_idx = sorted(order[:n_val].tolist()), sorted(order[n_val:].tolist())
    return data.subset(train_idx), data.subset(val_idx, split=f"validation({fraction:g} of train)")
