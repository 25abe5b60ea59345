"""Token predictions -> entity spans over the original text (first sub-token per word, IOB2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from inference._encoding import Row
from inference.decoding import bio_viterbi
from schemas import Entity
from schemas.tags import tag_parts


def window_centrality(position: int, first: int, last: int) -> int:
    """How far the token at `position` sits from the nearer edge of its window's content
    (tokens `first`..`last`). Windows of a long text overlap; a token read in several takes
    its prediction from the most central reading, where the model saw context on both sides."""
    return min(position - first, last - position)


@dataclass(frozen=True)
class _Words:
    """The words of one text that some row read, in order: word id, character span, and the
    probability row of its first sub-token."""

    index: list[int]
    starts: list[int]
    ends: list[int]
    probs: np.ndarray  # (words, tags)


def _one_row(row: Row, p: np.ndarray) -> _Words | None:
    """The words of a text read in one row (the common case: no windows to reconcile), or None
    when the row's word ids are not in order (then the general path decides)."""
    index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    firsts: list[int] = []
    previous = -1
    for t, w in enumerate(row.word_ids):
        if w is None:
            continue
        start, end = row.offsets[t]
        if w == previous:
            ends[-1] = max(ends[-1], end)
            continue
        if w < previous:
            return None
        previous = w
        index.append(w)
        starts.append(start)
        ends.append(end)
        firsts.append(t)
    return _Words(index, starts, ends, p[firsts])


def _overlapping(rows: Sequence[Row], probs: Sequence[np.ndarray]) -> _Words:
    """The words of a text read in overlapping windows: a token read in several takes its
    prediction from the one where it sits most centrally (`window_centrality`)."""
    spans: dict[int, list[int]] = {}
    # (word, token start) -> (distance from the window's nearer edge, probability row)
    best: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
    for row, p in zip(rows, probs, strict=True):
        content = [t for t, w in enumerate(row.word_ids) if w is not None]
        if not content:
            continue
        first, last = content[0], content[-1]
        for t in content:
            w = row.word_ids[t]
            assert w is not None
            start, end = row.offsets[t]
            span = spans.setdefault(w, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
            rank = window_centrality(t, first, last)
            seen = best.get((w, start))
            if seen is None or rank > seen[0]:
                best[(w, start)] = (rank, p[t])
    order = sorted(spans)
    # Each word reads its first sub-token.
    word_probs = [best[(w, spans[w][0])][1] for w in order]
    width = probs[0].shape[-1] if len(probs) else 0
    return _Words(
        order,
        [spans[w][0] for w in order],
        [spans[w][1] for w in order],
        np.stack(word_probs) if word_probs else np.zeros((0, width)),
    )


def entity_spans(
    text: str,
    rows: Sequence[Row],
    probs: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    viterbi: bool = True,
) -> list[Entity]:
    """Tag the words (the best valid BIO sequence, or with `viterbi=False` each word's argmax)
    and merge B-X/I-X words into entities; an I-X that does not continue an X starts one, and
    an entity never spans words no row read (the cut middle of a head_tail row)."""
    words = _one_row(rows[0], probs[0]) if len(rows) == 1 else None
    if words is None:
        words = _overlapping(rows, probs)
    if not words.index:
        return []
    tags = bio_viterbi(words.probs, labels) if viterbi else words.probs.argmax(axis=1).tolist()
    scores = words.probs[np.arange(len(tags)), tags].tolist()
    parts = [tag_parts(label) for label in labels]
    entities: list[Entity] = []
    kind = ""
    first = -1  # the open entity's first word (position in `words`), -1 when none is open

    def close(last: int) -> None:
        start, end = words.starts[first], words.ends[last]
        score = sum(scores[first : last + 1]) / (last + 1 - first)
        entities.append(Entity(type=kind, text=text[start:end], start=start, end=end, score=score))

    for position, tag in enumerate(tags):
        prefix, tag_type = parts[tag]
        if first >= 0 and (
            # Words between were never read: an entity across them would hold unread text.
            words.index[position] != words.index[position - 1] + 1
            or not tag_type
            or prefix == "B"
            or tag_type != kind
        ):
            close(position - 1)
            first = -1
        if not tag_type:
            continue
        if first < 0:
            first, kind = position, tag_type
    if first >= 0:
        close(len(tags) - 1)
    return entities
