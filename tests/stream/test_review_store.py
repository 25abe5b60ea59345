"""The review store on its own: joins, waiting feedback, expiry, labels, newest wins, retention."""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from schemas.events import DeadLetterReason, ModelRef
from schemas.feedback import ArchivedMessage, Feedback
from schemas.messages import MessageKind
from stream.errors import ReviewStoreError
from stream.records import InboundRecord
from stream.review_store import (
    DATASET_COLUMNS,
    Joined,
    Rejected,
    ReviewStore,
    write_dataset,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
LABELS = {"ticket": {"billing", "tech", "sales"}}


def archived(message_id: str, *, category: str = "billing", **overrides: Any) -> ArchivedMessage:
    values: dict[str, Any] = {
        "message_id": message_id,
        "kind": MessageKind.TICKET,
        "pipeline": "ticket",
        "text": f"text of {message_id}",
        "category": category,
        "confidence": 0.75,
        "route": f"desk.{category}",
        "review": False,
        "classifier": ModelRef(name="tickets", version="v1"),
        "routed_at": T0,
        **overrides,
    }
    return ArchivedMessage(**values)


def feedback(message_id: str, *, at: datetime = T0, **fields: Any) -> Feedback:
    fields.setdefault("label", "tech")
    return Feedback(message_id=message_id, reviewer="ana", reviewed_at=at, **fields)


def record(offset: int, value: bytes = b'{"x": 1}') -> InboundRecord:
    return InboundRecord("t.feedback", 2, offset, b"key", value, T0, T0)


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    return ReviewStore(
        tmp_path / "review.sqlite",
        labels_of=LABELS.get,
        retention=timedelta(days=30),
        feedback_wait=timedelta(minutes=10),
    )


def test_records_read_twice_change_nothing(store: ReviewStore) -> None:
    for _ in range(2):
        assert store.add_archived([archived("m1")]) == []
        outcome = store.add_feedback(feedback("m1"), record(5), now=T0)
        assert isinstance(outcome, Joined)
    assert store.archived_count() == 1
    assert [j.feedback.message_id for j in store.joined()] == ["m1"]
    assert store.pending_count() == 0
    assert store.agreement() == (0, 1)


def test_feedback_before_its_message_waits_and_is_joined_when_it_arrives(
    store: ReviewStore,
) -> None:
    assert store.add_feedback(feedback("m1", label="billing"), record(7), now=T0) is None
    assert store.pending_count() == 1
    assert store.joined() == []

    [outcome] = store.add_archived([archived("m1"), archived("m2")])

    assert isinstance(outcome, Joined) and outcome.agrees and outcome.verdict == "agree"
    assert store.pending_count() == 0
    [row] = store.joined()
    assert (row.message.text, row.label) == ("text of m1", "billing")


def test_feedback_waiting_longer_than_the_wait_is_due_with_its_record_until_dropped(
    store: ReviewStore,
) -> None:
    store.add_feedback(feedback("gone"), record(9, b'{"raw": true}'), now=T0)
    store.add_feedback(feedback("later"), record(10), now=T0 + timedelta(minutes=5))

    assert store.due(now=T0 + timedelta(minutes=9)) == []
    [due] = store.due(now=T0 + timedelta(minutes=11))

    assert due.feedback.message_id == "gone"
    assert due.record == InboundRecord("t.feedback", 2, 9, b"key", b'{"raw": true}', T0, T0)
    # Still held until its dead letter is acknowledged: a crash before then loses nothing.
    assert store.pending_count() == 2
    assert len(store.due(now=T0 + timedelta(minutes=11))) == 1
    store.drop([due])
    assert store.pending_count() == 1
    assert store.due(now=T0 + timedelta(minutes=11)) == []


def test_a_label_the_pipeline_lacks_is_rejected_and_nothing_is_stored(store: ReviewStore) -> None:
    store.add_archived([archived("m1")])

    outcome = store.add_feedback(feedback("m1", label="Sports"), record(3), now=T0)

    assert isinstance(outcome, Rejected)
    assert outcome.reason is DeadLetterReason.UNKNOWN_LABEL
    assert "Sports" in outcome.detail and "billing" in outcome.detail
    assert outcome.record == record(3) and outcome.pipeline == "ticket"
    assert store.joined() == []
    multi = store.add_feedback(feedback("m1", label=None, labels=["tech", "x"]), now=T0)
    assert isinstance(multi, Rejected) and "x" in multi.detail and "tech," not in multi.detail


def test_waiting_feedback_with_an_unknown_label_is_kept_until_its_dead_letter_is_out(
    store: ReviewStore,
) -> None:
    store.add_feedback(feedback("m1", label="Sports"), record(4), now=T0)

    [first] = store.add_archived([archived("m1")])
    # The archive record read again (the dead letter was not acknowledged): rejected again.
    [again] = store.add_archived([archived("m1")])

    assert isinstance(first, Rejected) and first.record == record(4)
    assert again == first
    assert store.pending_count() == 1
    # Its message is archived: it is never due as unknown_message.
    assert store.due(now=T0 + timedelta(days=1)) == []
    store.drop([first])
    assert store.pending_count() == 0
    assert store.add_archived([archived("m1")]) == []


def test_a_pipeline_without_known_labels_is_not_checked(store: ReviewStore) -> None:
    store.add_archived([archived("m1", pipeline="other")])
    assert isinstance(store.add_feedback(feedback("m1", label="anything"), now=T0), Joined)


def test_the_newest_feedback_wins_whatever_order_it_is_read_in(store: ReviewStore) -> None:
    newer = feedback("m1", label="sales", at=T0 + timedelta(hours=1))
    older = feedback("m1", label="tech", at=T0)
    # Waiting: the older, read last, does not replace the newer.
    store.add_feedback(newer, now=T0)
    store.add_feedback(older, now=T0)
    store.add_archived([archived("m1")])
    assert [j.label for j in store.joined()] == ["sales"]
    # Joined: the same.
    store.add_archived([archived("m2")])
    store.add_feedback(feedback("m2", label="sales", at=T0 + timedelta(hours=1)), now=T0)
    store.add_feedback(feedback("m2", label="tech", at=T0), now=T0)
    store.add_feedback(feedback("m1", label="billing", at=T0 + timedelta(hours=2)), now=T0)
    assert {j.feedback.message_id: j.label for j in store.joined()} == {
        "m1": "billing",
        "m2": "sales",
    }


def test_archived_messages_past_the_retention_are_dropped_but_joined_feedback_stays(
    store: ReviewStore,
) -> None:
    store.add_archived([archived("old"), archived("new", routed_at=T0 + timedelta(days=20))])
    store.add_feedback(feedback("old"), now=T0)

    assert store.prune(now=T0 + timedelta(days=31)) == 1

    assert store.archived_count() == 1
    assert [j.feedback.message_id for j in store.joined()] == ["old"]
    # Feedback on a pruned message waits, as for one never archived.
    assert store.add_feedback(feedback("old", at=T0 + timedelta(days=31)), now=T0) is None


def test_labels_agreement_and_the_dataset_rows(store: ReviewStore, tmp_path: Path) -> None:
    store.add_archived(
        [
            archived("agree", category="billing"),
            archived("fix", category="billing"),
            archived("confirm", category="tech"),
            archived("wrong", category="tech"),
            archived("ents", category="tech"),
            archived("multi", pipeline="tags", labels=["b", "a"]),
        ]
    )
    minute = timedelta(minutes=1)
    store.add_feedback(feedback("agree", label="billing", at=T0), now=T0)
    store.add_feedback(feedback("fix", label="sales", at=T0 + minute), now=T0)
    store.add_feedback(feedback("confirm", label=None, routing_correct=True, at=T0 + 2 * minute))
    store.add_feedback(feedback("wrong", label=None, routing_correct=False, at=T0 + 3 * minute))
    entities = [{"start": 0, "end": 4, "label": "ORG"}]
    store.add_feedback(feedback("ents", label=None, entities=entities, at=T0 + 4 * minute))
    store.add_feedback(feedback("multi", label=None, labels=["c", "a"], at=T0 + 5 * minute))

    rows = store.joined()
    assert [(r.feedback.message_id, r.label, r.agrees) for r in rows] == [
        ("agree", "billing", True),
        ("fix", "sales", False),
        ("confirm", "tech", True),
        ("wrong", None, False),
        ("ents", None, None),
        ("multi", '["a", "c"]', False),
    ]
    # Entity-only feedback says nothing about the label: not in the agreement.
    assert store.agreement() == (2, 5)
    assert store.agreement(pipeline="ticket") == (2, 4)
    assert [(s.pipeline, s.archived, s.joined, s.agree, s.judged) for s in store.stats()] == [
        ("tags", 1, 1, 0, 1),
        ("ticket", 5, 5, 2, 4),
    ]

    out = tmp_path / "data" / "reviewed.csv"
    assert write_dataset(rows, out) == 4
    with out.open(encoding="utf-8", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == DATASET_COLUMNS
    assert [(r["text"], r["label"], r["model_label"]) for r in table] == [
        ("text of agree", "billing", "billing"),
        ("text of fix", "sales", "billing"),
        ("text of confirm", "tech", "tech"),
        ("text of multi", '["a", "c"]', "billing"),
    ]
    assert table[2]["routing_correct"] == "true" and table[0]["routing_correct"] == ""
    assert table[0]["model_version"] == "v1" and table[0]["reviewer"] == "ana"


def test_a_missing_store_is_an_error_when_it_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ReviewStoreError, match="no review store"):
        ReviewStore(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()


def test_a_store_of_another_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "review.sqlite"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(ReviewStoreError, match="layout version 99"):
        ReviewStore(path)
