"""`textroute tail`: follow the routed and dead-letter topics as live tables."""

from __future__ import annotations

from collections import deque

from rich.console import Console, Group
from rich.live import Live

from schemas.events import DeadLetter, RoutingEvent
from stream.config import BrokerSettings, TopicSettings
from stream.topics import ReadRecord, reader, to_records
from stream.view import dead_letters_table, decode_outputs, events_table


async def tail(
    broker: BrokerSettings,
    topics: TopicSettings,
    console: Console,
    *,
    follow: bool = True,
    from_beginning: bool = True,
    dead_letters: bool = True,
    rows: int = 25,
    idle_s: float = 2.0,
) -> tuple[int, int]:
    """Show routed events (and dead letters) as tables; returns how many of each were seen.

    With `follow` the tables update live with the last `rows` records until Ctrl-C; without,
    everything is read until the topics are idle for `idle_s` and printed once.
    """
    names = [topics.routed, topics.dead_letter] if dead_letters else [topics.routed]
    events: deque[RoutingEvent] = deque(maxlen=rows if follow else None)
    dead: deque[DeadLetter] = deque(maxlen=rows if follow else None)
    counts = [0, 0]

    def add(records: list[ReadRecord]) -> None:
        new_events, new_dead, _ = decode_outputs(records, topics.routed)
        events.extend(new_events)
        dead.extend(new_dead)
        counts[0] += len(new_events)
        counts[1] += len(new_dead)

    def render() -> Group:
        title = f"Routed events ({counts[0]} seen)"
        parts = [events_table(list(events), title=title)]
        if dead_letters:
            parts.append(dead_letters_table(list(dead), title=f"Dead letters ({counts[1]} seen)"))
        return Group(*parts)

    async with reader(broker, names, from_beginning=from_beginning) as consumer:
        if not follow:
            while batch := await consumer.getmany(timeout_ms=int(idle_s * 1000)):
                add(to_records(batch))
            console.print(render())
            return counts[0], counts[1]
        with Live(render(), console=console, refresh_per_second=4) as live:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                if batch:
                    add(to_records(batch))
                    live.update(render())
