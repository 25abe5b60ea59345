"""The demo's messages: held-out tickets, Reuters test articles, emails (some HTML), malformed."""

from __future__ import annotations

import html
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from schemas.messages import MessageKind
from stream.datasets import Row, read_reuters, reuters_date
from stream.samples import CUSTOMERS, ORGS, PEOPLE, SampleRecord, sample_message, sample_records

#: The dataset's ticket priorities on the wire's scale (low, normal, high, urgent).
_PRIORITY = {"low": "low", "medium": "normal", "high": "high", "critical": "urgent"}
_CHANNELS = ["web", "email", "phone", "chat"]
#: The languages of the tickets sent to show the language check, in turn.
FOREIGN_LANGUAGES = ("de", "es", "fr")
#: Enough text for a language to be told apart reliably, and short enough to read in a table.
_TICKET_CHARS = (80, 1500)
_ARTICLE_CHARS = (200, 2500)
_ROLES = ["Head of Finance", "Account Manager", "Operations Lead", "Sales Director"]


@dataclass(frozen=True)
class DemoMessage:
    """One record the demo sends, what it shows (`note`) and, for data-set rows, the labels
    the data set gives it (`gold`), to compare with what the models said."""

    record: SampleRecord
    note: str
    gold: tuple[str, ...] = ()

    @property
    def kind(self) -> MessageKind:
        return self.record.kind


@dataclass(frozen=True)
class MixCounts:
    """How many messages of each sort the demo sends."""

    tickets: int
    foreign_tickets: int
    articles: int
    emails: int
    html_emails: int
    malformed: int

    @classmethod
    def of(cls, messages: int, malformed_ratio: float) -> MixCounts:
        """`messages` in all, `malformed_ratio` of them malformed, the rest about 2:2:1.5
        tickets, articles and emails (one ticket in six foreign, one email in three HTML)."""
        malformed = round(messages * malformed_ratio)
        valid = messages - malformed
        tickets = round(valid * 24 / 59)
        articles = round(valid * 20 / 59)
        emails = valid - tickets - articles
        foreign = round(tickets / 6) if tickets >= 2 else 0
        return cls(
            tickets=tickets - foreign,
            foreign_tickets=foreign,
            articles=articles,
            emails=emails,
            html_emails=round(emails / 3),
            malformed=malformed,
        )


def _record(kind: MessageKind, msg: dict[str, object]) -> SampleRecord:
    return SampleRecord(kind, str(msg["id"]), json.dumps(msg).encode())


def _fits(row: Row, bounds: tuple[int, int]) -> bool:
    return bounds[0] <= len(row["subject"]) + len(row["body"]) <= bounds[1]


def ticket_message(row: Row, message_id: str, rng: random.Random) -> dict[str, object]:
    """A ticket of the data set as the wire's ticket message."""
    return {
        "id": message_id,
        "customer": rng.choice(CUSTOMERS),
        "subject": row["subject"],
        "body": row["body"],
        "priority": _PRIORITY.get(row["priority"], "normal"),
        "channel": rng.choice(_CHANNELS),
    }


def pick_tickets(test: Sequence[Row], n: int, rng: random.Random) -> list[Row]:
    """`n` held-out rows taken in turn from each queue (largest first), so the demo shows
    many desks rather than mostly Technical Support."""
    by_queue: dict[str, list[Row]] = {}
    for row in test:
        if _fits(row, _TICKET_CHARS):
            by_queue.setdefault(row["queue"], []).append(row)
    for rows in by_queue.values():
        rng.shuffle(rows)
    order = sorted(by_queue, key=lambda q: (-len(by_queue[q]), q))
    picked: list[Row] = []
    while len(picked) < n and any(by_queue.values()):
        for queue in order:
            if by_queue[queue] and len(picked) < n:
                picked.append(by_queue[queue].pop())
    return picked


def pick_foreign(rows: Sequence[Row], n: int, rng: random.Random) -> list[Row]:
    """`n` tickets in FOREIGN_LANGUAGES, in turn."""
    pools = {
        lang: [r for r in rows if r.get("language") == lang and _fits(r, _TICKET_CHARS)]
        for lang in FOREIGN_LANGUAGES
    }
    picked = []
    for i in range(n):
        pool = pools[FOREIGN_LANGUAGES[i % len(FOREIGN_LANGUAGES)]]
        if pool:
            picked.append(pool.pop(rng.randrange(len(pool))))
    return picked


def article_message(row: dict[str, object], message_id: str) -> dict[str, object]:
    """A Reuters article as the wire's article message."""
    published = reuters_date(row.get("date"))
    return {
        "id": message_id,
        "headline": str(row.get("title") or ""),
        "body": str(row.get("body") or ""),
        "source": "Reuters",
        "published_at": published.isoformat() if published else None,
    }


def _labels(row: dict[str, object]) -> list[str]:
    labels = row.get("labels")
    return [str(x) for x in labels] if isinstance(labels, list) else []


def pick_articles(path: Path, n: int, rng: random.Random) -> list[dict[str, object]]:
    """`n` test articles with a body, half of them (rounded down) with two labels or more."""
    rows = [
        r
        for r in read_reuters(path)
        if _labels(r) and _ARTICLE_CHARS[0] <= len(str(r.get("body") or "")) <= _ARTICLE_CHARS[1]
    ]
    multi = [r for r in rows if len(_labels(r)) >= 2]
    single = [r for r in rows if len(_labels(r)) == 1]
    picked = rng.sample(multi, min(n // 2, len(multi)))
    picked += rng.sample(single, min(n - len(picked), len(single)))
    rng.shuffle(picked)
    return picked


def html_email(msg: dict[str, object], quoted: dict[str, object], rng: random.Random) -> str:
    """The body of `msg` as an HTML reply: a signature under it and `quoted` (an earlier mail,
    on another topic) below that, which the email pipeline cuts before the models read it."""
    sender = str(msg["from"]).split("@")[0].replace(".", " ").title()
    other = rng.choice([p for p in PEOPLE if p != sender])
    address = other.lower().replace(" ", ".") + "@example.com"
    when = datetime(2026, 1, 1, tzinfo=timezone.utc) - timedelta(days=rng.randint(1, 20))
    return (
        f"<html><head><title>{html.escape(str(msg['subject']))}</title></head><body>\n"
        f"<p>{html.escape(str(msg['body']))}</p>\n"
        f"<p>Best regards,<br>{sender}<br>{rng.choice(_ROLES)}, {rng.choice(ORGS)}<br>"
        f"+44 20 7946 {rng.randint(1000, 9999)}</p>\n"
        f'<div class="gmail_quote"><div>On {when:%a, %d %b %Y} at 09:{rng.randint(10, 59)}, '
        f"{other} &lt;{address}&gt; wrote:</div>\n"
        f"<blockquote>{html.escape(str(quoted['body']))}</blockquote></div>\n"
        "</body></html>"
    )


def _emails(n: int, n_html: int, prefix: str, rng: random.Random) -> Iterator[DemoMessage]:
    for i in range(n):
        message_id = f"{prefix}-email-{i:02d}"
        msg, category = sample_message(MessageKind.EMAIL, message_id, rng)
        note = "email"
        if i < n_html:
            # The quote talks about something else, so a model reading it would be misled.
            while True:
                quoted, other = sample_message(MessageKind.EMAIL, message_id, rng)
                if other != category:
                    break
            msg = dict(msg, subject=f"Re: {msg['subject']}", body=html_email(msg, quoted, rng))
            note = "HTML email: quote + signature"
        yield DemoMessage(_record(MessageKind.EMAIL, msg), note, (category,))


def demo_messages(
    counts: MixCounts,
    *,
    prefix: str,
    seed: int,
    ticket_test: Sequence[Row] | None,
    ticket_rows: Sequence[Row] | None,
    reuters_test: Path | None,
) -> list[DemoMessage]:
    """The demo's messages, in sending order: tickets, articles, emails, malformed records.

    `ticket_test` is the held-out English part of the tickets split and `ticket_rows` all
    rows (for the foreign ones); without them, or without the Reuters test file, generated
    sample tickets or articles stand in.
    """
    rng = random.Random(seed)
    out: list[DemoMessage] = []
    n_tickets = counts.tickets + counts.foreign_tickets
    if ticket_test is not None and ticket_rows is not None:
        picked = pick_tickets(ticket_test, counts.tickets, rng)
        picked += pick_foreign(ticket_rows, counts.foreign_tickets, rng)
        for i, row in enumerate(picked):
            msg = ticket_message(row, f"{prefix}-ticket-{i:02d}", rng)
            lang = row.get("language", "en")
            note = "held-out ticket" if lang == "en" else f"ticket in {lang}"
            out.append(DemoMessage(_record(MessageKind.TICKET, msg), note, (row["queue"],)))
    else:
        for i in range(n_tickets):
            msg, _ = sample_message(MessageKind.TICKET, f"{prefix}-ticket-{i:02d}", rng)
            out.append(DemoMessage(_record(MessageKind.TICKET, msg), "sample ticket"))
    if reuters_test is not None:
        for i, article in enumerate(pick_articles(reuters_test, counts.articles, rng)):
            msg = article_message(article, f"{prefix}-article-{i:02d}")
            labels = tuple(_labels(article))
            note = f"Reuters, {len(labels)} topic{'s' if len(labels) > 1 else ''}"
            out.append(DemoMessage(_record(MessageKind.ARTICLE, msg), note, labels))
    else:
        for i in range(counts.articles):
            msg, _ = sample_message(MessageKind.ARTICLE, f"{prefix}-article-{i:02d}", rng)
            out.append(DemoMessage(_record(MessageKind.ARTICLE, msg), "sample article"))
    out.extend(_emails(counts.emails, counts.html_emails, prefix, rng))
    bad = sample_records(
        counts.malformed, malformed_ratio=1.0, seed=seed, id_prefix=f"{prefix}-bad"
    )
    out.extend(DemoMessage(r, f"malformed: {r.damage}") for r in bad)
    return out
