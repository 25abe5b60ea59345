"""Document context for NER: unlabelled words of neighbouring sentences around each sentence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class InContext:
    """A sentence with the words around it: `words[start:start + length]` is the sentence."""

    words: list[str]
    start: int
    length: int


def subword_counts(tokenizer: Any, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    """Subwords per word of each pre-split sentence (no special tokens)."""
    enc = tokenizer(
        [list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False
    )
    counts = []
    for i, words in enumerate(sentences):
        row = [0] * len(words)
        for word in enc.word_ids(i):
            if word is not None:
                row[word] += 1
        counts.append(row)
    return counts


def _gather(
    sentences: Sequence[Sequence[str]],
    counts: Sequence[Sequence[int]],
    documents: Sequence[int],
    index: int,
    step: int,
    budget: int,
) -> list[str]:
    """Whole words from the neighbours of sentence `index` on one side (`step` -1 or +1),
    nearest first, within `budget` subwords and the sentence's own document."""
    taken: list[str] = []
    used = 0
    j = index + step
    while 0 <= j < len(sentences) and documents[j] == documents[index]:
        order = range(len(sentences[j]) - 1, -1, -1) if step < 0 else range(len(sentences[j]))
        for k in order:
            if used + counts[j][k] > budget:
                return taken[::-1] if step < 0 else taken
            used += counts[j][k]
            taken.append(sentences[j][k])
        j += step
    return taken[::-1] if step < 0 else taken


def with_context(
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    documents: Sequence[int] | None,
    *,
    budget: int,
    max_length: int,
) -> list[InContext]:
    """Each sentence between up to `budget` subwords of its document's text on each side.

    CoNLL-style corpora cut documents into sentences; a headline or a results table alone is
    often ambiguous (is "Lincoln" a person, a town or a club?), and an uncased model cannot
    lean on capitals, so the surrounding text is fed as unlabelled context (as in FLERT,
    Schweter and Akbik 2020). The window never pushes the sentence itself past `max_length`:
    the room left by a long sentence is shared between the two sides.
    """
    if budget <= 0 or documents is None:
        return [InContext(list(s), 0, len(s)) for s in sentences]
    counts = subword_counts(tokenizer, sentences)
    out = []
    for i, words in enumerate(sentences):
        side = min(budget, max(0, (max_length - 2 - sum(counts[i])) // 2))
        left = _gather(sentences, counts, documents, i, -1, side) if side else []
        right = _gather(sentences, counts, documents, i, 1, side) if side else []
        out.append(InContext(left + list(words) + right, len(left), len(words)))
    return out
