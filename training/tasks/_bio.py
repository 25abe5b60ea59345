"""BIO (IOB2) labels on subwords: aligning word tags to tokenized windows of a sentence."""

from __future__ import annotations

from collections.abc import Sequence

from inference import bio_transitions, bio_viterbi
from training.formats._iob import split_tag

__all__ = [
    "IGNORE_INDEX",
    "align_labels",
    "bio_transitions",
    "bio_viterbi",
    "continuation_ids",
    "first_subwords",
]

IGNORE_INDEX = -100  # PyTorch's cross-entropy skips this label


def continuation_ids(label_names: Sequence[str]) -> list[int]:
    """For each label id, the id that labels a word's later subwords: I-X for B-X, else itself."""
    index = {name: i for i, name in enumerate(label_names)}
    out = []
    for i, name in enumerate(label_names):
        prefix, kind = split_tag(name)
        out.append(index.get(f"I-{kind}", i) if prefix == "B" else i)
    return out


def first_subwords(
    word_ids: Sequence[int | None], offsets: Sequence[tuple[int, int]]
) -> dict[int, int]:
    """Word index -> position of its first subword in one tokenized window.

    A window that continues a long sentence may open in the middle of a word; that word's
    first subword is in an earlier window, which its offset shows (it does not start at 0).
    """
    out: dict[int, int] = {}
    opening = True  # the first content token of the window
    for position, word in enumerate(word_ids):
        if word is None:
            continue
        if word not in out and (not opening or offsets[position][0] == 0):
            out[word] = position
        opening = False
    return out


def align_labels(
    word_ids: Sequence[int | None],
    offsets: Sequence[tuple[int, int]],
    word_labels: Sequence[int],
    *,
    continuation: Sequence[int] | None = None,
) -> list[int]:
    """Per-token labels for one tokenized window of a pre-split sentence.

    The first subword of each word gets the word's label; special tokens get -100. Later
    subwords get -100, or, when `continuation` (from `continuation_ids`) is given, the word's
    label mapped through it (B-X -> I-X), which labels all subwords. A word labelled -100
    (unlabelled context) stays -100 on every subword.
    """
    firsts = set(first_subwords(word_ids, offsets).values())
    labels: list[int] = []
    for position, word in enumerate(word_ids):
        if word is None or word_labels[word] == IGNORE_INDEX:
            labels.append(IGNORE_INDEX)
        elif position in firsts:
            labels.append(word_labels[word])
        elif continuation is not None:
            labels.append(continuation[word_labels[word]])
        else:
            labels.append(IGNORE_INDEX)
    return labels
