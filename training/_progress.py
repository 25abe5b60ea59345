"""Rich progress bars for long loops, silent when disabled or not on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

T = TypeVar("T")


def track(items: Iterable[T], *, description: str, enabled: bool = True) -> Iterator[T]:
    """Iterate with a rich progress bar (elapsed and remaining time) when enabled."""
    if not enabled:
        yield from items
        return
    from rich.progress import track as rich_track

    total = len(items) if isinstance(items, Sized) else None
    yield from rich_track(items, description=description, total=total, transient=False)
