"""BIO tags: strict for training data, lenient for a served model's labels."""

from __future__ import annotations

import pytest

from schemas.tags import is_bio_tag, split_tag, tag_parts


@pytest.mark.parametrize("tag", ["PER", "B-", "X-PER", "b-PER", ""])
def test_split_tag_rejects_what_is_not_bio(tag: str) -> None:
    with pytest.raises(ValueError, match="not a BIO tag"):
        split_tag(tag)
    assert not is_bio_tag(tag)


def test_split_tag_reads_outside_begin_and_inside() -> None:
    assert [split_tag(t) for t in ("O", "B-PER", "I-ORG")] == [
        ("O", ""),
        ("B", "PER"),
        ("I", "ORG"),
    ]


@pytest.mark.parametrize(
    ("tag", "parts"),
    [("B-PER", ("B", "PER")), ("E-LOC", ("E", "LOC")), ("O", ("O", "")), ("MISC", ("O", ""))],
)
def test_tag_parts_reads_any_label_without_raising(tag: str, parts: tuple[str, str]) -> None:
    assert tag_parts(tag) == parts
