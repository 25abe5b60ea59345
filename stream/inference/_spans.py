"""Token predictions -> entity spans over the original text (first sub-token per word, IOB2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from schemas import Entity
from stream.inference._encoding import Row


@dataclass
class _Word:
    start: int
    end: int
    tag: str
    prob: float


def _words(rows: Sequence[Row], probs: Sequence[np.ndarray], labels: Sequence[str]) -> list[_Word]:
    """One entry per word: its tag and probability from its first sub-token, its span from all."""
    words: dict[int, _Word] = {}
    for row, p in zip(rows, probs, strict=True):
        best = p.argmax(-1)
        for t, w in enumerate(row.word_ids):
            if w is None:
                continue
            start, end = row.offsets[t]
            if w in words:
                word = words[w]
                word.start, word.end = min(word.start, start), max(word.end, end)
            else:
                words[w] = _Word(start, end, labels[int(best[t])], float(p[t, best[t]]))
    return [words[w] for w in sorted(words)]


def entity_spans(
    text: str, rows: Sequence[Row], probs: Sequence[np.ndarray], labels: Sequence[str]
) -> list[Entity]:
    """Merge B-X/I-X words into entities; an I-X that does not continue an X starts one."""
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

    for word in _words(rows, probs, labels):
        prefix, _, tag_type = word.tag.partition("-")
        if word.tag == "O" or not tag_type:
            close()
            kind = ""
            continue
        if prefix == "B" or tag_type != kind or not current:
            close()
            kind = tag_type
        current.append(word)
    close()
    return entities
