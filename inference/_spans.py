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


@dataclass
class _Word:
    start: int
    end: int
    tag: str
    prob: float


def _words(
    rows: Sequence[Row], probs: Sequence[np.ndarray], labels: Sequence[str], *, viterbi: bool
) -> list[_Word]:
    """One entry per word: its tag and probability from its first sub-token, its span from all.

    A token read in several overlapping windows takes its prediction from the one where it
    sits most centrally (`window_centrality`).
    With `viterbi` the tags are the most probable valid BIO sequence, else each word's argmax.
    """
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
    if viterbi and word_probs:
        tags = bio_viterbi(np.stack(word_probs), labels)
    else:
        tags = [int(p.argmax()) for p in word_probs]
    return [
        _Word(spans[w][0], spans[w][1], labels[tag], float(p[tag]))
        for w, p, tag in zip(order, word_probs, tags, strict=True)
    ]


def entity_spans(
    text: str,
    rows: Sequence[Row],
    probs: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    viterbi: bool = True,
) -> list[Entity]:
    """Tag the words (the best valid BIO sequence, or with `viterbi=False` each word's argmax)
    and merge B-X/I-X words into entities; an I-X that does not continue an X starts one."""
    entities: list[Entity] = []
    current: list[_Word] = []
    kind = ""

    def close() -> None:
        if current:
            start, end = current[0].start, current[-1].end
            score = float(np.mean([w.prob for w in current]))
            entities.append(
                Entity(type=kind, text=text[start:end], start=start, end=end, score=score)
            )
            current.clear()

    for word in _words(rows, probs, labels, viterbi=viterbi):
        prefix, tag_type = tag_parts(word.tag)
        if not tag_type:
            close()
            kind = ""
            continue
        if prefix == "B" or tag_type != kind or not current:
            close()
            kind = tag_type
        current.append(word)
    close()
    return entities
