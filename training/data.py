"""Load labelled text from local files (CSV, TSV, JSONL, JSON, parquet) or Hub datasets."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from schemas import DataRef
from schemas.artifact import sha256_file
from training.errors import (
    ColumnNotFound,
    DataError,
    DataFileNotFound,
    EmptyText,
    TooFewClasses,
    UnknownLabel,
)

LOCAL_SUFFIXES = {".csv", ".tsv", ".jsonl", ".json", ".parquet", ".txt"}
_SHOWN_ROWS = 5


@dataclass(frozen=True)
class LabelledTexts:
    """Rows of text (or text pairs) with integer labels indexing `label_names`."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    pairs: list[str] | None = None
    ref: DataRef = field(default_factory=lambda: DataRef(source="memory"))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int]) -> LabelledTexts:
        return LabelledTexts(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            label_names=self.label_names,
            pairs=None if self.pairs is None else [self.pairs[i] for i in indices],
            ref=self.ref.model_copy(update={"rows": len(indices)}),
        )


def is_local(source: str) -> bool:
    """A source is local when it exists on disk or looks like a file path."""
    path = Path(source)
    return path.exists() or path.suffix.lower() in LOCAL_SUFFIXES or source.startswith((".", "/"))


def read_table(source: str, *, split: str | None = None) -> pd.DataFrame:
    """Read a local CSV/TSV/JSONL/JSON/parquet file, or a Hub dataset split, as a DataFrame."""
    if is_local(source):
        return _read_local(Path(source))
    return _read_hub(source, split or "train")


def _read_local(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataFileNotFound(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path, keep_default_na=False, dtype=object)
        if suffix in (".tsv", ".txt"):
            # GLUE-style TSVs are unquoted and their sentences contain '"'.
            return pd.read_csv(
                path,
                sep="\t",
                quoting=csv.QUOTE_NONE,
                keep_default_na=False,
                dtype=object,
                encoding="utf-8-sig",
            )
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        if suffix == ".json":
            return pd.read_json(path, dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path} as {suffix[1:]}: {exc}") from exc
    raise DataError(
        f"unsupported data file type {suffix!r} for {path}: use csv, tsv, jsonl, json or parquet"
    )


def _read_hub(name: str, split: str) -> pd.DataFrame:
    import datasets

    config = None
    if ":" in name:  # e.g. glue:sst2 -> dataset glue, config sst2
        name, config = name.split(":", 1)
    try:
        ds = datasets.load_dataset(name, config, split=split)
    except Exception as exc:  # the Hub raises many types: offline, missing, auth
        raise DataFileNotFound(
            f"cannot load Hub dataset {name!r} (split {split!r}): {exc}. "
            "Offline? Pass a local CSV/TSV/JSONL/parquet file instead."
        ) from exc
    frame: pd.DataFrame = ds.to_pandas()
    # Keep ClassLabel names so integer labels get their real names.
    for column, feature in ds.features.items():
        names = getattr(feature, "names", None)
        if names:
            frame.attrs.setdefault("label_names", {})[column] = list(names)
    return frame


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ColumnNotFound(
            f"{source}: column(s) {', '.join(map(repr, missing))} not found; "
            f"available: {', '.join(map(str, frame.columns))}"
        )


def _join_text(frame: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    parts = [frame[c].fillna("").astype(str).str.strip() for c in columns]
    joined = parts[0]
    for part in parts[1:]:
        # Join with '. ' only where both sides are non-empty (AG News train has empty titles).
        joined = joined.where(part == "", joined.where(joined == "", joined + ". ") + part)
    return [" ".join(t.split()) for t in joined.tolist()]


def _check_non_empty(texts: Sequence[str], source: str, column_desc: str) -> None:
    empty = [i for i, t in enumerate(texts) if not t]
    if empty:
        shown = ", ".join(str(i + 1) for i in empty[:_SHOWN_ROWS])
        raise EmptyText(
            f"{source}: {len(empty)} row(s) have empty text in {column_desc} "
            f"(rows {shown}{', ...' if len(empty) > _SHOWN_ROWS else ''}); "
            "drop them or choose other --text-column(s)"
        )


def _label_names_from(frame: pd.DataFrame, column: str) -> list[str] | None:
    names: dict[str, list[str]] = frame.attrs.get("label_names", {})
    return names.get(column)


def load_labelled_texts(
    source: str,
    *,
    text_columns: Sequence[str],
    label_column: str = "label",
    pair_column: str | None = None,
    split: str | None = None,
    label_names: Sequence[str] | None = None,
    limit: int | None = None,
    index_labels: bool = True,
) -> LabelledTexts:
    """Load texts (joined from `text_columns`, optionally paired) with labels.

    Label values are names: without `label_names` the classes are the values present (integer
    codes such as 1..12 stay the names "1".."12", in numeric order, with no empty class). With
    `label_names`, a value that is one of them is that class and, when `index_labels`, an
    integer outside them indexes them (0..N-1); any other value is an UnknownLabel error
    naming the value and the row.
    """
    frame = read_table(source, split=split)
    columns = [*text_columns, label_column, *([pair_column] if pair_column else [])]
    _require_columns(frame, columns, source)
    if limit is not None:
        frame = frame.iloc[:limit]
    if frame.empty:
        raise DataError(f"{source}: no rows to load")
    texts = _join_text(frame, text_columns)
    _check_non_empty(texts, source, "+".join(text_columns))
    pairs = None
    if pair_column:
        pairs = _join_text(frame, [pair_column])
        _check_non_empty(pairs, source, pair_column)
    names = list(label_names) if label_names else _label_names_from(frame, label_column)
    labels, names = _encode_labels(
        frame[label_column].tolist(), names, source, index_labels=index_labels
    )
    ref = DataRef(
        source=source,
        split=split,
        rows=len(texts),
        columns=columns,
        sha256=sha256_file(Path(source)) if Path(source).is_file() else None,
    )
    return LabelledTexts(texts=texts, labels=labels, label_names=names, pairs=pairs, ref=ref)


def _encode_labels(
    raw: list[Any], names: list[str] | None, source: str, *, index_labels: bool = True
) -> tuple[list[int], list[str]]:
    values = [str(v).strip() for v in raw]
    if names is None:
        # Integer codes are names, not indexes: codes 1..12 would otherwise make 13 classes,
        # an empty "0" among them (and any gap another), each dragging macro-F1 down.
        numeric = all(_is_integer(v) for v in values)
        names = sorted(set(values), key=int if numeric else None)
        index_labels = False
    elif all(_is_integer(name) for name in names):
        # Names that are codes (a model trained on codes 1..12): a code among them is that
        # class, any other integer is an unknown label, never an index.
        index_labels = False
    index = {name: i for i, name in enumerate(names)}
    labels: list[int] = []
    for row, value in enumerate(values):
        if value in index:
            labels.append(index[value])
        elif index_labels and value.isdigit() and int(value) < len(names):
            labels.append(int(value))
        else:
            raise UnknownLabel(
                f"{source}: row {row + 1} has label {value!r}, which is not in the label map "
                f"{names}; fix the row or pass the full --label-names"
            )
    return labels, names


def _is_integer(value: str) -> bool:
    return value.lstrip("-").isdigit()


def check_trainable(data: LabelledTexts) -> None:
    """Classification needs two or more classes present in the training rows."""
    present = sorted(set(data.labels))
    if len(present) < 2:
        only = data.label_names[present[0]] if present else "none"
        raise TooFewClasses(
            f"{data.ref.source}: the training data holds one class only ({only!r}); "
            "a classifier needs at least two"
        )


def train_validation_split(
    data: LabelledTexts, *, fraction: float, seed: int
) -> tuple[LabelledTexts, LabelledTexts]:
    """Carve a stratified validation split out of the training rows (never out of test).

    A class with a single row cannot be in both parts: it stays in training (a model cannot
    learn a class it never sees) and the other classes are stratified; when the validation
    part is smaller than the number of classes, the carve is random. Either way one warning
    says so.
    """
    from sklearn.model_selection import train_test_split

    from training._progress import warn

    counts = {label: data.labels.count(label) for label in set(data.labels)}
    rare = sorted(label for label, n in counts.items() if n < 2)
    kept = [i for i, label in enumerate(data.labels) if counts[label] >= 2]
    pinned = [i for i, label in enumerate(data.labels) if counts[label] < 2]
    if rare:
        names = ", ".join(repr(data.label_names[label]) for label in rare)
        warn(
            f"{data.ref.source}: class(es) {names} have one row only: kept in training, "
            "absent from validation"
        )
    if len(kept) < 2:
        raise DataError(
            f"{data.ref.source}: {len(data)} rows leave none to carve a validation split from; "
            "a class needs two rows to be both learnt and checked"
        )
    # As many rows as scikit-learn's float test_size would take, so carves made before a
    # class was ever pinned stay the same.
    size = min(len(kept) - 1, math.ceil(fraction * len(data)))
    stratify: list[int] | None = [data.labels[i] for i in kept]
    if size < len(counts) - len(rare) or size > len(kept) - (len(counts) - len(rare)):
        warn(
            f"{data.ref.source}: {len(data)} rows are too few for a stratified validation "
            f"carve of {size} over {len(counts)} classes: carving at random"
        )
        stratify = None
    train_idx, val_idx = train_test_split(
        kept, test_size=size, random_state=seed, stratify=stratify
    )
    train, val = data.subset(sorted([*train_idx, *pinned])), data.subset(sorted(val_idx))
    return train, val.__class__(
        texts=val.texts,
        labels=val.labels,
        label_names=val.label_names,
        pairs=val.pairs,
        ref=val.ref.model_copy(update={"split": f"validation({fraction:g} of train)"}),
    )
