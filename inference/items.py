"""Per-item results of a batch: the typed error one bad input gets, and input validation."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field

EMPTY_TEXT: Final = "empty_text"
NOT_A_STRING: Final = "not_a_string"
TEXT_TOO_LONG: Final = "text_too_long"
INFERENCE_ERROR: Final = "inference_error"


class ItemError(BaseModel):
    """Why one item of a batch got no prediction; the other items are unaffected."""

    model_config = ConfigDict(frozen=True)

    index: int
    reason: str
    message: str


def check_text(index: int, value: object, max_chars: int) -> str | ItemError:
    """The text itself when usable, else the ItemError saying what is wrong with it."""
    if not isinstance(value, str):
        return ItemError(
            index=index,
            reason=NOT_A_STRING,
            message=f"expected a string, got {type(value).__name__}",
        )
    if not value.strip():
        return ItemError(index=index, reason=EMPTY_TEXT, message="the text is empty or blank")
    if len(value) > max_chars:
        return ItemError(
            index=index,
            reason=TEXT_TOO_LONG,
            message=f"the text has {len(value)} characters, over the limit of {max_chars} "
            "(TEXTROUTE_INFERENCE_MAX_CHARS)",
        )
    return value


def check_pair(index: int, value: object, max_chars: int) -> tuple[str, str] | ItemError:
    """Both texts of a pair, checked like single texts."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        return ItemError(
            index=index,
            reason=NOT_A_STRING,
            message=f"expected a (text, text) pair, got {type(value).__name__}",
        )
    first = check_text(index, value[0], max_chars)
    if isinstance(first, ItemError):
        return first
    second = check_text(index, value[1], max_chars)
    if isinstance(second, ItemError):
        return second
    return first, second


class Answer(BaseModel):
    """An extractive answer: a span of the context (question-answering artifacts)."""

    model_config = ConfigDict(frozen=True)

    text: str
    start: int = Field(ge=0, description="Start character offset in the context, inclusive.")
    end: int = Field(ge=0, description="End character offset in the context, exclusive.")
    score: float = Field(ge=0.0, le=1.0, description="P(start) x P(end) over the context.")
