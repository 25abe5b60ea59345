"""The Kafka record as a consumer read it, and the strict JSON its value must hold."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from schemas.events import DeadLetterReason
from stream.errors import RecordRejectedError

#: Python's own default limit (sys.get_int_max_str_digits), enforced whatever it is set to.
MAX_INT_DIGITS = 4300


@dataclass(frozen=True)
class InboundRecord:
    """One Kafka record as a consumer received it: where it came from and its bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime | None
    received_at: datetime


class _JSONRejected(ValueError):
    """Valid-looking JSON that a consumer will not take (see parse_json)."""


def parse_json(text: str) -> object:
    """The JSON value of `text`; RecordRejectedError (invalid_json) for text that is not JSON
    or holds what a consumer will not take: NaN or Infinity (not JSON, though Python reads
    them), numbers beyond a double, integers of more than MAX_INT_DIGITS digits."""
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except RecursionError as exc:
        # Nesting deeper than the parser allows, e.g. "[[[[...".
        raise RecordRejectedError(
            DeadLetterReason.INVALID_JSON, "value is not JSON the worker takes: nested too deep"
        ) from exc
    except _JSONRejected as exc:
        raise RecordRejectedError(
            DeadLetterReason.INVALID_JSON, f"value is not JSON the worker takes: {exc}"
        ) from exc
    except ValueError as exc:
        # JSONDecodeError, or int()'s own digit limit should it be set below MAX_INT_DIGITS.
        raise RecordRejectedError(
            DeadLetterReason.INVALID_JSON, f"value is not JSON: {exc}"
        ) from exc


def _reject_constant(name: str) -> object:
    raise _JSONRejected(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _JSONRejected(f"the number {literal[:40]!r} is out of range for a double")
    return value


def _bounded_int(literal: str) -> int:
    # Parsing a huge integer is quadratic, and Python refuses more than 4300 digits anyway,
    # with advice (sys.set_int_max_str_digits) meant for the program, not the producer.
    digits = len(literal) - literal.startswith("-")
    if digits > MAX_INT_DIGITS:
        raise _JSONRejected(
            f"an integer has {digits} digits, more than the {MAX_INT_DIGITS} accepted"
        )
    return int(literal)
