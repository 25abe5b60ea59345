"""Realistic sample emails, tickets and articles (and malformed records) for demos and tests."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from schemas.events import DeadLetterReason
from schemas.messages import MessageKind

ORGS = ["Google", "Apple", "Microsoft", "Reuters", "Acme Corp", "Siemens", "Toyota", "NASA"]
PEOPLE = ["John Smith", "Mary Smith", "Angela Merkel", "Satya Nadella", "Lisa Chen"]
ATHLETES = ["Roger Federer", "Serena Williams", "Rafael Nadal", "Naomi Osaka"]
PLACES = ["London", "Paris", "Berlin", "Tokyo", "New York", "Geneva", "Nairobi"]
TEAMS = ["Manchester United", "Real Madrid", "the Lakers", "the Yankees", "Bayern Munich"]
CUSTOMERS = ["cust-1042", "cust-2210", "cust-3307", "cust-4411", "cust-5150"]

# (category, subject/headline, body) templates; the category is what a good model should say.
_ARTICLES = [
    (
        "World",
        "Talks resume in {place} as ministers seek ceasefire",
        "Foreign ministers met in {place} on Tuesday to restart peace talks, {person} said, "
        "after troops withdrew from the border overnight.",
    ),
    (
        "World",
        "Election results delayed in {place}",
        "Officials in {place} postponed the announcement of the presidential election results, "
        "citing irregularities reported by international observers.",
    ),
    (
        "Sports",
        "{team} win in dramatic final minutes",
        "{team} came from behind to win 3-2 in {place} on Sunday, with the coach praising "
        "the players' resilience after a difficult season.",
    ),
    (
        "Sports",
        "{athlete} reaches semifinal",
        "{athlete} beat the defending champion in straight sets in {place} to reach the "
        "semifinal of the tournament for the fifth time.",
    ),
    (
        "Business",
        "{org} shares jump after profit beats forecasts",
        "Shares of {org} rose 8 percent in {place} trading after the company reported "
        "quarterly profit well above analysts' expectations and raised its sales outlook.",
    ),
    (
        "Business",
        "Oil prices climb as supply worries grow",
        "Crude oil prices rose for a third day as traders in {place} weighed supply cuts; "
        "{org} said it expects higher fuel costs to weigh on margins.",
    ),
    (
        "Sci/Tech",
        "{org} unveils new chip for data centers",
        "{org} introduced a faster processor for cloud computing on Wednesday, saying the chip "
        "cuts energy use by a third; {person} presented it in {place}.",
    ),
    (
        "Sci/Tech",
        "NASA probe sends first images from asteroid",
        "The spacecraft beamed back detailed images of the asteroid's surface, scientists at "
        "NASA said, a milestone for the mission launched from {place} last year.",
    ),
]
_EMAILS = [
    (
        "Business",
        "Invoice 4471 from {org}",
        "Hello, please find attached invoice 4471 for the consulting work {org} delivered in "
        "{place}. {person} asked that payment be made within 30 days. Best regards.",
    ),
    (
        "Business",
        "Quarterly sales figures",
        "Hi team, sales in {place} grew 12% this quarter. {person} will present the profit "
        "forecast to the board on Friday; please send your market numbers by Thursday.",
    ),
    (
        "Sci/Tech",
        "Server migration this weekend",
        "The web servers in the {place} data center move to the new cloud platform on Saturday. "
        "Expect the internet portal to be offline for two hours. Contact {person} with issues.",
    ),
    (
        "Sports",
        "Tickets for the {team} game",
        "Hi {person}, I have two spare tickets for the {team} match in {place} next Sunday. "
        "Let me know if you want them before the league final.",
    ),
    (
        "World",
        "Travel advisory for {place}",
        "Dear colleagues, due to the protests and the government curfew in {place}, all trips "
        "are postponed until further notice. {person} from security will keep you updated.",
    ),
]
_TICKETS = [
    (
        "Sci/Tech",
        "App crashes after update",
        "Since this morning's update the {org} app crashes on start on my phone. I reinstalled "
        "it twice. Please help, I need it for work in {place}.",
    ),
    (
        "Sci/Tech",
        "Cannot log in to the portal",
        "I get an error 500 when I try to log in to the web portal from {place}. My colleague "
        "{person} has the same problem since yesterday.",
    ),
    (
        "Business",
        "Refund for double charge",
        "I was charged twice for my subscription this month. Please refund the second payment "
        "to my bank account; the invoice number is 88213. Thanks, {person}.",
    ),
    (
        "Business",
        "Question about pricing",
        "Our company in {place} wants to upgrade to the enterprise plan. What is the price for "
        "200 seats and do you offer discounts for annual contracts? {person}",
    ),
    (
        "Sports",
        "Stream of the {team} match froze",
        "The live stream of the {team} game froze in the second half and never came back. "
        "I paid for the season pass, please fix this before the next match.",
    ),
]
_TEMPLATES: dict[MessageKind, list[tuple[str, str, str]]] = {
    MessageKind.ARTICLE: _ARTICLES,
    MessageKind.EMAIL: _EMAILS,
    MessageKind.TICKET: _TICKETS,
}
_SOURCES = ["Reuters", "AP", "AFP", "Bloomberg"]
_CHANNELS = ["web", "email", "phone", "chat"]
_PRIORITIES = ["low", "normal", "normal", "high", "urgent"]


@dataclass(frozen=True)
class SampleRecord:
    """One record to send: its kind (hence topic), key and raw value.

    `expected_reason` is None for a valid message and the dead-letter reason for a malformed
    one, and `damage` names how it was damaged (a key of DAMAGES or POISON_REASONS);
    `category` is the label a good classifier should give a valid message.
    """

    kind: MessageKind
    key: str
    value: bytes
    expected_reason: DeadLetterReason | None = None
    category: str | None = None
    damage: str | None = None


def _fillers(rng: random.Random) -> dict[str, str]:
    # One set per message, so subject and body talk about the same organisation and people.
    return {
        "org": rng.choice(ORGS),
        "person": rng.choice(PEOPLE),
        "place": rng.choice(PLACES),
        "team": rng.choice(TEAMS),
        "athlete": rng.choice(ATHLETES),
    }


def sample_message(
    kind: MessageKind, message_id: str, rng: random.Random
) -> tuple[dict[str, object], str]:
    """A valid message of `kind` as its wire dict, and its intended category."""
    category, head, body = rng.choice(_TEMPLATES[kind])
    fillers = _fillers(rng)
    head, body = head.format(**fillers), body.format(**fillers)
    now = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=rng.randint(0, 10_000))
    if kind is MessageKind.EMAIL:
        user = rng.choice(PEOPLE).lower().replace(" ", ".")
        msg: dict[str, object] = {
            "id": message_id, "from": f"{user}@example.com", "to": ["inbox@textroute.dev"],
            "subject": head, "body": body, "received_at": now.isoformat(),
        }  # fmt: skip
    elif kind is MessageKind.TICKET:
        msg = {
            "id": message_id, "customer": rng.choice(CUSTOMERS), "subject": head, "body": body,
            "priority": rng.choice(_PRIORITIES), "channel": rng.choice(_CHANNELS),
        }  # fmt: skip
    else:
        msg = {
            "id": message_id, "headline": head, "body": body, "source": rng.choice(_SOURCES),
            "published_at": now.isoformat(),
        }  # fmt: skip
    return msg, category


def _malformed(
    reason: DeadLetterReason, kind: MessageKind, message_id: str, rng: random.Random, huge: int
) -> bytes:
    good, _ = sample_message(kind, message_id, rng)
    text = json.dumps(good)
    if reason is DeadLetterReason.INVALID_JSON:
        return text[: len(text) // 2].encode()
    if reason is DeadLetterReason.NOT_UTF8:
        return b"\xff\xfe" + text.encode("utf-16-le")
    if reason is DeadLetterReason.SCHEMA_ERROR:
        broken = dict(good)
        broken.pop("body")
        broken["id"] = message_id
        return json.dumps(broken).encode()
    if reason is DeadLetterReason.EMPTY_TEXT:
        blank = dict(good, body="   ")
        blank.pop("subject", None)
        blank.pop("headline", None)
        return json.dumps(blank).encode()
    if reason is DeadLetterReason.TEXT_TOO_LONG:
        return json.dumps(dict(good, body="word " * (huge // 5 + 1))).encode()
    raise ValueError(f"no malformed sample for {reason}")


MALFORMED_REASONS = (
    DeadLetterReason.INVALID_JSON,
    DeadLetterReason.NOT_UTF8,
    DeadLetterReason.SCHEMA_ERROR,
    DeadLetterReason.EMPTY_TEXT,
    DeadLetterReason.TEXT_TOO_LONG,
)
#: What each of MALFORMED_REASONS' samples does to a message.
DAMAGES = {
    DeadLetterReason.INVALID_JSON: "truncated_json",
    DeadLetterReason.NOT_UTF8: "utf16_bytes",
    DeadLetterReason.SCHEMA_ERROR: "missing_body",
    DeadLetterReason.EMPTY_TEXT: "blank_text",
    DeadLetterReason.TEXT_TOO_LONG: "long_text",
}

#: Poison kinds: records made to break a parser, an encoder or a size limit on their way
#: through the worker rather than the schema, with the dead-letter reason each one gets.
POISON_REASONS = {
    # {"id": "\ud800", ...}: valid JSON whose id no UTF-8 output can carry.
    "surrogate_id": DeadLetterReason.SCHEMA_ERROR,
    # A body of 5,000 digits: Python's int() refuses more than 4,300 (and is quadratic).
    "huge_integer": DeadLetterReason.INVALID_JSON,
    # About 900 KB of text: under the 1 MB inbound limit, over the 64 KiB a dead letter keeps.
    "huge_payload": DeadLetterReason.TEXT_TOO_LONG,
    # A body of 100,000 nested arrays: deeper than the JSON parser's recursion limit.
    "deep_nesting": DeadLetterReason.INVALID_JSON,
    # The UTF-8 bytes of a surrogate in the body: lenient decoders take them, strict ones not.
    "invalid_utf8": DeadLetterReason.NOT_UTF8,
}
POISON_KINDS = tuple(POISON_REASONS)
HUGE_PAYLOAD_BYTES = 900_000
HUGE_INTEGER_DIGITS = 5_000
NESTING_DEPTH = 100_000


def poison_value(damage: str, kind: MessageKind, message_id: str, rng: random.Random) -> bytes:
    """The value of a `kind` message damaged in the poison way `damage` (see POISON_REASONS)."""
    good, _ = sample_message(kind, message_id, rng)
    # The other values are strings (or lists of them), whose quotes JSON escapes: this
    # marker occurs once.
    hollow = json.dumps(dict(good, body=None))
    if damage == "surrogate_id":
        return json.dumps(dict(good, id="\ud800")).encode()  # ASCII JSON: the escape stays
    if damage == "huge_integer":
        return hollow.replace('"body": null', f'"body": {"9" * HUGE_INTEGER_DIGITS}').encode()
    if damage == "huge_payload":
        filler = HUGE_PAYLOAD_BYTES - len(hollow)
        return json.dumps(dict(good, body="word " * (filler // 5))).encode()
    if damage == "deep_nesting":
        nested = "[" * NESTING_DEPTH + "]" * NESTING_DEPTH
        return hollow.replace('"body": null', f'"body": {nested}').encode()
    if damage == "invalid_utf8":
        return json.dumps(good).encode().replace(b'"body": "', b'"body": "\xed\xa0\x80', 1)
    raise ValueError(f"no poison kind {damage!r}; known: {', '.join(POISON_KINDS)}")


def sample_records(
    n: int,
    *,
    malformed_ratio: float = 0.0,
    seed: int = 0,
    id_prefix: str = "msg",
    huge_text_chars: int = 25_000,
    poison_share: float = 0.2,
) -> Iterator[SampleRecord]:
    """`n` records of mixed kinds, about `malformed_ratio` of them malformed in varied ways,
    `poison_share` of those in the poison ways of POISON_REASONS.

    Texts over `huge_text_chars` characters stand for 'huge text'; keep it above the worker's
    max_text_chars. Deterministic for a given seed.
    """
    for name, ratio in (("malformed_ratio", malformed_ratio), ("poison_share", poison_share)):
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {ratio}")
    rng = random.Random(seed)
    # Poison is drawn from a stream of its own, so `rng` draws what it drew before the poison
    # kinds existed: a seed gives the same records as then, but for those poisoned.
    poison_rng = random.Random(f"{seed}:poison")
    kinds = list(MessageKind)
    for i in range(n):
        kind = kinds[i % len(kinds)]
        message_id = f"{id_prefix}-{i:06d}"
        if rng.random() < malformed_ratio:
            reason = MALFORMED_REASONS[rng.randrange(len(MALFORMED_REASONS))]
            value = _malformed(reason, kind, message_id, rng, huge_text_chars)
            damage = DAMAGES[reason]
            if poison_rng.random() < poison_share:
                damage = POISON_KINDS[poison_rng.randrange(len(POISON_KINDS))]
                value = poison_value(damage, kind, message_id, poison_rng)
                reason = POISON_REASONS[damage]
            yield SampleRecord(kind, message_id, value, expected_reason=reason, damage=damage)
        else:
            msg, category = sample_message(kind, message_id, rng)
            yield SampleRecord(kind, message_id, json.dumps(msg).encode(), category=category)
