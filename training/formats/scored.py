"""Texts or text pairs with a real-valued score, for regression heads (STS-B similarity)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from schemas import DataRef
from training.errors import ColumnNotFound, DataError, EmptyText


@dataclass(frozen=True)
class ScoredTexts:
    """Rows of text (optionally paired) with a float target."""

    texts: list[str]
    scores: list[float]
    pairs: list[str] | None = None
    ref: DataRef = field(default_factory=lambda: DataRef(source="memory"))

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, indices: Sequence[int], split: str | None = None) -> ScoredTexts:
        return ScoredTexts(
            texts=[self.texts[i] for i in indices],
            scores=[self.scores[i] for i in indices],
            pairs=None if self.pairs is None else [self.pairs[i] for i in indices],
            ref=self.ref.model_copy(
                update={"rows": len(indices), "split": split or self.ref.split}
            ),
        )


def load_scored_texts(
    source: str,
    *,
    text_column: str,
    score_column: str,
    pair_column: str | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> ScoredTexts:
    """Load texts (and pairs) with numeric scores; a missing column, an empty text or a
    score that is not a number is an error naming the row."""
    from schemas.artifact import sha256_file
    from training.data import read_table

    frame = read_table(source, split=split)
    columns = [text_column, score_column, *([pair_column] if pair_column else [])]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ColumnNotFound(
            f"{source}: column(s) {missing} not found; available: {list(frame.columns)}"
        )
    if limit is not None:
        frame = frame.iloc[:limit]
    if frame.empty:
        raise DataError(f"{source}: no rows to load")
    scores = pd.to_numeric(frame[score_column], errors="coerce")
    bad = [i + 1 for i, v in enumerate(scores.isna()) if v]
    if bad:
        raise DataError(
            f"{source}: {len(bad)} row(s) have a {score_column!r} that is not a number "
            f"(rows {bad[:5]}); a regression target must be numeric"
        )
    texts = [str(t).strip() for t in frame[text_column]]
    pairs = [str(t).strip() for t in frame[pair_column]] if pair_column else None
    for column, values in ((text_column, texts), (pair_column, pairs)):
        empty = [i + 1 for i, t in enumerate(values or []) if not t]
        if empty:
            raise EmptyText(
                f"{source}: {len(empty)} row(s) have empty {column!r} (rows {empty[:5]})"
            )
    from pathlib import Path

    ref = DataRef(
        source=source,
        split=split,
        rows=len(texts),
        columns=columns,
        sha256=sha256_file(Path(source)) if Path(source).is_file() else None,
    )
    return ScoredTexts(texts=texts, scores=[float(v) for v in scores], pairs=pairs, ref=ref)
