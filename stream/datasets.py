"""The shared data sets the demo and the bench read: help-desk tickets (split) and Reuters news."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from sklearn.model_selection import train_test_split

TICKETS_CSV = Path("tickets") / "dataset-tickets-multi-lang3-4k.csv"
REUTERS_TRAIN = Path("reuters21578") / "modapte_train.jsonl"
REUTERS_TEST = Path("reuters21578") / "modapte_test.jsonl"

#: The columns a ticket split keeps.
TICKET_COLUMNS = ("subject", "body", "queue", "priority", "type", "language")

Row = dict[str, str]


def read_tickets(path: Path) -> list[Row]:
    """Every row of the tickets CSV, as strings (a real CSV parser: CRLF record ends and
    newlines inside quoted fields)."""
    with path.open(newline="", encoding="utf-8") as f:
        return [dict(row) for row in csv.DictReader(f)]


def split_tickets(
    rows: Sequence[Row],
    *,
    language: str = "en",
    test_fraction: float = 0.2,
    stratify: str = "queue",
    seed: int = 42,
) -> tuple[list[Row], list[Row]]:
    """Seeded stratified train/test split of the tickets in `language` (SOURCES.md section 4),
    each row cut to TICKET_COLUMNS.

    Rows without any text are dropped first (one English body is empty, and a third of the
    subjects): a model can learn nothing from them and a worker would dead-letter them.
    """
    kept = [
        {c: row.get(c, "") for c in TICKET_COLUMNS}
        for row in rows
        if row.get("language") == language
        and (row.get("subject", "").strip() + row.get("body", "").strip())
    ]
    train, test = train_test_split(
        kept,
        test_size=test_fraction,
        random_state=seed,
        stratify=[row[stratify] for row in kept],
    )
    return list(train), list(test)


def write_tickets(rows: Sequence[Row], path: Path) -> None:
    """`rows` as a CSV of TICKET_COLUMNS (what `textroute train classify` reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(TICKET_COLUMNS), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def read_reuters(path: Path) -> list[dict[str, object]]:
    """The Reuters-21578 articles of a JSON-lines split (labels, title, body: maybe null)."""
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def reuters_date(text: object) -> datetime | None:
    """A Reuters date such as '8-APR-1987 01:03:47.52', or None when it does not parse."""
    if not isinstance(text, str):
        return None
    try:
        return datetime.strptime(text.strip().split(".")[0], "%d-%b-%Y %H:%M:%S").replace(
            tzinfo=timezone.utc
        )
    except ValueError:
        return None
