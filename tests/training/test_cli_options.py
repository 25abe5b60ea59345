"""Parsing of the options the training commands share."""

from __future__ import annotations

import pytest

from training._cli_options import split_csv


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ([], None),
        ("title,description", ["title", "description"]),
        (["title", "description"], ["title", "description"]),
        (["title, description", "extra"], ["title", "description", "extra"]),
        (" , ", None),
    ],
)
def test_split_csv_reads_repeated_and_comma_separated_names_alike(
    value: str | list[str] | None, expected: list[str] | None
) -> None:
    assert split_csv(value) == expected
