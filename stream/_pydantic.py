"""Pydantic helpers shared by the stream's modules."""

from __future__ import annotations

from pydantic import ValidationError


def summarize_validation_error(error: ValidationError) -> str:
    """One line per field at fault, `loc.path: message`, joined by '; '."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in error.errors()
    )
