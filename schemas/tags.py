"""Entity tags in the BIO scheme, read strictly (training data) or leniently (a model's labels)."""

from __future__ import annotations

OUTSIDE = "O"


def split_tag(tag: str) -> tuple[str, str]:
    """('B', 'PER') for 'B-PER', ('O', '') for 'O'; raises ValueError for anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in ("B", "I") or not kind:
        raise ValueError(f"{tag!r} is not a BIO tag: expected 'O', 'B-TYPE' or 'I-TYPE'")
    return prefix, kind


def is_bio_tag(tag: str) -> bool:
    """Whether `tag` is 'O', 'B-TYPE' or 'I-TYPE'."""
    try:
        split_tag(tag)
    except ValueError:
        return False
    return True


def tag_parts(tag: str) -> tuple[str, str]:
    """(prefix, type) of a model's label, never an error: 'B-PER' -> ('B', 'PER'), and a label
    without a type ('O', 'MISC') -> ('O', ''). Serving reads any token classifier's labels
    this way, including schemes other than BIO (an 'E-PER' still names a PER word)."""
    prefix, _, kind = tag.partition("-")
    return (prefix, kind) if kind else (OUTSIDE, "")
