"""Rich progress bars for long loops (silent when off or not on a terminal); one-line warnings."""

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


def warn(message: str) -> None:
    """Print a one-line warning on stderr: a step the data forced to degrade, said before the
    long run rather than found in its results."""
    from rich.console import Console
    from rich.markup import escape

    # Escaped: label names and lists in the message would otherwise read as markup.
    Console(stderr=True, soft_wrap=True).print(f"[bold yellow]warning:[/] {escape(message)}")
