"""The IOB2 tag scheme: tag validation, IOB1 repair and the label set of a tagged corpus."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from schemas.tags import OUTSIDE, is_bio_tag, split_tag

__all__ = ["OUTSIDE", "bio_label_set", "is_bio_tag", "split_tag", "to_iob2"]


def to_iob2(tags: Sequence[str]) -> tuple[list[str], int]:
    """Rewrite IOB1 (an entity may open with I-) as IOB2; returns the tags and how many changed.

    An I-X that does not continue an X entity opens one, so it becomes B-X.
    """
    out: list[str] = []
    changed = 0
    previous = ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if prefix == "I" and previous != kind:
            tag = f"B-{kind}"
            changed += 1
        out.append(tag)
        previous = kind
    return out, changed


def bio_label_set(tags: Iterable[str]) -> list[str]:
    """'O' then B-/I- of every entity type seen, types sorted; both prefixes of each type
    are included so the model can predict a continuation even if the data never shows one."""
    kinds = sorted({split_tag(t)[1] for t in tags} - {""})
    return [OUTSIDE, *(f"{p}-{k}" for k in kinds for p in ("B", "I"))]
