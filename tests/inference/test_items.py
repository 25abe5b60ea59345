"""Input validation per item: the reason codes the stream's dead-letter records carry."""

from __future__ import annotations

import pytest

from inference import ItemError
from inference.items import check_pair, check_text


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty_text"),
        (" \n\t", "empty_text"),
        (b"x", "not_a_string"),
        (None, "not_a_string"),
        (["a"], "not_a_string"),
        ("abcdef", "text_too_long"),
    ],
)
def test_unusable_texts_get_their_reason(value: object, reason: str) -> None:
    checked = check_text(7, value, max_chars=5)
    assert isinstance(checked, ItemError)
    assert (checked.index, checked.reason) == (7, reason)
    assert checked.message


def test_a_text_at_the_limit_passes_unchanged() -> None:
    assert check_text(0, " abc ", max_chars=5) == " abc "


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ab", "not_a_string"),
        (("a",), "not_a_string"),
        (("a", ""), "empty_text"),
        ((1, "b"), "not_a_string"),
        (("a", "toolong"), "text_too_long"),
    ],
)
def test_bad_pairs_get_their_reason(value: object, reason: str) -> None:
    checked = check_pair(2, value, max_chars=5)
    assert isinstance(checked, ItemError) and checked.reason == reason


def test_a_good_pair_passes_as_a_tuple() -> None:
    assert check_pair(0, ["a", "b"], max_chars=5) == ("a", "b")
