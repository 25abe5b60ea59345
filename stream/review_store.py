"""The review store: archived messages and reviewers' feedback joined in one SQLite file."""

from __future__ import annotations

import csv
import json
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from schemas.events import DeadLetterReason
from schemas.feedback import ArchivedMessage, Feedback
from stream.errors import ReviewStoreError
from stream.records import InboundRecord

#: Pipeline name -> its classifier's labels (None: the pipeline is not known here).
LabelsOf = Callable[[str], Collection[str] | None]

#: Columns of the dataset file, `text` and `label` first: `textroute train classify` reads it
#: as it is (the other columns are provenance and are ignored by training).
DATASET_COLUMNS = (
    "text",
    "label",
    "message_id",
    "pipeline",
    "kind",
    "model_label",
    "model_confidence",
    "model_version",
    "routing_correct",
    "reviewer",
    "reviewed_at",
)

#: The layout of the file (SQLite's user_version); another one is refused, not guessed at.
STORE_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS archived (
    message_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    routed_at REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archived_routed_at ON archived (routed_at);
CREATE TABLE IF NOT EXISTS feedback (
    message_id TEXT PRIMARY KEY,
    pipeline TEXT NOT NULL,
    reviewed_at REAL NOT NULL,
    feedback TEXT NOT NULL,
    archived TEXT NOT NULL,
    agrees INTEGER
);
CREATE TABLE IF NOT EXISTS pending (
    message_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL,
    reviewed_at REAL NOT NULL,
    feedback TEXT NOT NULL,
    src_topic TEXT,
    src_partition INTEGER,
    src_offset INTEGER,
    src_timestamp REAL,
    src_received_at REAL,
    src_key BLOB,
    src_value BLOB
);
"""


@dataclass(frozen=True)
class Joined:
    """Feedback matched with the message it is about."""

    feedback: Feedback
    message: ArchivedMessage

    @property
    def label(self) -> str | None:
        """The label a training row gets: the reviewer's, or the model's when the reviewer
        confirmed the routing without one; None when the right label is unknown."""
        fb = self.feedback
        if fb.label is not None:
            return fb.label
        if fb.labels is not None:
            return json.dumps(sorted(fb.labels))
        if fb.routing_correct:
            if self.message.labels:
                return json.dumps(sorted(self.message.labels))
            return self.message.category
        return None

    @property
    def agrees(self) -> bool | None:
        """Whether the reviewer confirms the model's label (or routing); None when the
        feedback says nothing about either (entities only)."""
        fb, msg = self.feedback, self.message
        if fb.label is not None:
            return fb.label == msg.category
        if fb.labels is not None:
            return sorted(fb.labels) == sorted(msg.labels)
        return fb.routing_correct

    @property
    def verdict(self) -> str:
        """`agree` when the reviewer confirms the model, else `corrected`."""
        return "agree" if self.agrees else "corrected"


@dataclass(frozen=True)
class Rejected:
    """Feedback that cannot be used, why (a dead letter's reason and message), and the record
    it came in, when known."""

    feedback: Feedback
    reason: DeadLetterReason
    detail: str
    record: InboundRecord | None = None
    #: The pipeline of the message it names, when that is archived.
    pipeline: str | None = None


@dataclass(frozen=True)
class Pending:
    """Feedback waiting for its message, with the record it came in (kept so that its
    eventual dead letter carries the record's coordinates and bytes)."""

    feedback: Feedback
    record: InboundRecord | None
    received_at: datetime


@dataclass(frozen=True)
class PipelineStats:
    """What the store holds of one pipeline."""

    pipeline: str
    archived: int
    joined: int
    agree: int
    #: Joined feedback that says whether the model was right (the agreement's denominator).
    judged: int

    @property
    def agreement(self) -> float | None:
        return self.agree / self.judged if self.judged else None


#: What taking in a feedback record gave: joined now, kept for later (None), or rejected.
Outcome = Joined | Rejected | None


def unknown_labels(feedback: Feedback, known: Collection[str]) -> list[str]:
    """The labels the feedback names that the pipeline's classifier does not have."""
    named = [feedback.label] if feedback.label is not None else list(feedback.labels or [])
    return sorted({label for label in named if label not in known})


def _ts(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _moment(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReviewStore:
    """Archived messages, joined feedback and feedback waiting for its message, in SQLite.

    Everything is an upsert keyed by message id, so records read twice (at-least-once
    delivery) change nothing; the newest feedback on a message (by `reviewed_at`) replaces
    older feedback, joined or waiting. Feedback is only ever removed from the waiting list by
    joining it or by `drop`, which the caller runs once the feedback's dead letter is
    acknowledged, so none is lost between the two. Safe to call from several threads (one
    connection behind a lock).
    """

    def __init__(
        self,
        path: Path,
        *,
        labels_of: LabelsOf | None = None,
        retention: timedelta = timedelta(days=30),
        feedback_wait: timedelta = timedelta(minutes=10),
        create: bool = True,
    ) -> None:
        if not create and not path.is_file():
            raise ReviewStoreError(
                f"no review store at {path}: the worker (or `textroute review-store`) creates "
                "it at TEXTROUTE_WORKER_REVIEW_STORE_PATH (default DATA_DIR/review.sqlite)"
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            # WAL lets `textroute feedback dataset` read while the worker writes.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            (version,) = self._db.execute("PRAGMA user_version").fetchone()
            if version not in (0, STORE_VERSION):
                self._db.close()
                raise ReviewStoreError(
                    f"review store {path} has layout version {version}; this textroute "
                    f"reads version {STORE_VERSION}"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {STORE_VERSION}")
        except sqlite3.Error as exc:
            raise ReviewStoreError(f"cannot open review store {path}: {exc}") from exc
        self.path = path
        self._labels_of = labels_of
        self._retention = retention
        self._wait = feedback_wait
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- writing ----

    def add_archived(self, messages: Iterable[ArchivedMessage]) -> list[Joined | Rejected]:
        """Store routed messages; feedback that was waiting for them is joined now, or
        rejected (kept waiting until `drop`, so a crash before its dead letter is produced
        loses nothing), and returned."""
        rows = [(m.message_id, m.pipeline, _ts(m.routed_at), m.model_dump_json()) for m in messages]
        if not rows:
            return []
        outcomes: list[Joined | Rejected] = []
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT INTO archived (message_id, pipeline, routed_at, record) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
                "pipeline = excluded.pipeline, routed_at = excluded.routed_at, "
                "record = excluded.record",
                rows,
            )
            ids = list(dict.fromkeys(r[0] for r in rows))
            for pending in self._pending_in(ids):
                message = self._archived(pending.feedback.message_id)
                assert message is not None
                outcome = self._join(pending.feedback, message, pending.record)
                if isinstance(outcome, Joined):
                    self._delete_pending(pending.feedback)
                outcomes.append(outcome)
        return outcomes

    def add_feedback(
        self,
        feedback: Feedback,
        record: InboundRecord | None = None,
        *,
        now: datetime | None = None,
    ) -> Outcome:
        """Join feedback with its archived message, or reject it (unknown label); keep it
        waiting (None) when the message is not archived yet."""
        now = now or _now()
        with self._lock, self._transaction():
            message = self._archived(feedback.message_id)
            if message is not None:
                return self._join(feedback, message, record)
            src = _record_columns(record)
            self._db.execute(
                "INSERT INTO pending (message_id, received_at, reviewed_at, feedback, src_topic, "
                "src_partition, src_offset, src_timestamp, src_received_at, src_key, src_value) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
                "received_at = excluded.received_at, reviewed_at = excluded.reviewed_at, "
                "feedback = excluded.feedback, src_topic = excluded.src_topic, "
                "src_partition = excluded.src_partition, src_offset = excluded.src_offset, "
                "src_timestamp = excluded.src_timestamp, "
                "src_received_at = excluded.src_received_at, src_key = excluded.src_key, "
                "src_value = excluded.src_value "
                "WHERE excluded.reviewed_at >= pending.reviewed_at",
                (
                    feedback.message_id,
                    _ts(now),
                    _ts(feedback.reviewed_at),
                    feedback.model_dump_json(),
                    *src,
                ),
            )
            return None

    def due(self, *, now: datetime | None = None) -> list[Pending]:
        """Feedback that has waited longer than the feedback wait for a message still not
        archived, oldest first. It stays in the store until `drop`."""
        cutoff = _ts((now or _now()) - self._wait)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_PENDING_COLUMNS} FROM pending WHERE received_at < ? AND message_id "
                "NOT IN (SELECT message_id FROM archived) ORDER BY received_at, message_id",
                (cutoff,),
            ).fetchall()
        return [_pending(row) for row in rows]

    def drop(self, items: Iterable[Pending | Rejected]) -> None:
        """Forget waiting feedback once its dead letter is acknowledged; feedback that has
        replaced it meanwhile stays."""
        with self._lock, self._transaction():
            for item in items:
                self._delete_pending(item.feedback)

    def prune(self, *, now: datetime | None = None) -> int:
        """Drop archived messages older than the retention (joined feedback keeps its copy);
        how many were dropped."""
        cutoff = _ts((now or _now()) - self._retention)
        with self._lock:
            cursor = self._db.execute("DELETE FROM archived WHERE routed_at < ?", (cutoff,))
        return int(cursor.rowcount)

    # ---- reading ----

    def pending_count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM pending").fetchone()
        return int(count)

    def archived_count(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM archived").fetchone()
        return int(count)

    def joined(self, *, pipeline: str | None = None) -> list[Joined]:
        """Every joined feedback (of one pipeline), oldest review first."""
        query = "SELECT feedback, archived FROM feedback"
        args: tuple[str, ...] = ()
        if pipeline is not None:
            query += " WHERE pipeline = ?"
            args = (pipeline,)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY reviewed_at, message_id", args).fetchall()
        return [
            Joined(Feedback.model_validate_json(fb), ArchivedMessage.model_validate_json(msg))
            for fb, msg in rows
        ]

    def agreement(self, *, pipeline: str | None = None) -> tuple[int, int]:
        """(feedback confirming the model, joined feedback that judges it), over one pipeline
        or all; feedback on entities alone judges nothing."""
        query = "SELECT COALESCE(SUM(agrees), 0), COUNT(agrees) FROM feedback"
        args: tuple[str, ...] = ()
        if pipeline is not None:
            query += " WHERE pipeline = ?"
            args = (pipeline,)
        with self._lock:
            agree, total = self._db.execute(query, args).fetchone()
        return int(agree), int(total)

    def stats(self) -> list[PipelineStats]:
        """Archived messages, joined feedback and agreement of each pipeline, by name."""
        with self._lock:
            archived = dict(
                self._db.execute("SELECT pipeline, COUNT(*) FROM archived GROUP BY pipeline")
            )
            joined = {
                p: (n, agree, judged)
                for p, n, agree, judged in self._db.execute(
                    "SELECT pipeline, COUNT(*), COALESCE(SUM(agrees), 0), COUNT(agrees) "
                    "FROM feedback GROUP BY pipeline"
                )
            }
        return [
            PipelineStats(
                name, int(archived.get(name, 0)), *(int(v) for v in joined.get(name, (0, 0, 0)))
            )
            for name in sorted(set(archived) | set(joined))
        ]

    # ---- inside the lock ----

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def _join(
        self, feedback: Feedback, message: ArchivedMessage, record: InboundRecord | None
    ) -> Joined | Rejected:
        """Check the feedback against its message's pipeline and store the pair (unless newer
        feedback on the message is stored already)."""
        known = self._labels_of(message.pipeline) if self._labels_of is not None else None
        if known is not None:
            unknown = unknown_labels(feedback, known)
            if unknown:
                return Rejected(
                    feedback,
                    DeadLetterReason.UNKNOWN_LABEL,
                    f"label(s) {', '.join(unknown)} not among the {message.pipeline} "
                    f"pipeline's labels ({', '.join(sorted(known))})",
                    record,
                    message.pipeline,
                )
        joined = Joined(feedback, message)
        agrees = joined.agrees
        self._db.execute(
            "INSERT INTO feedback (message_id, pipeline, reviewed_at, feedback, archived, agrees) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
            "pipeline = excluded.pipeline, reviewed_at = excluded.reviewed_at, "
            "feedback = excluded.feedback, archived = excluded.archived, agrees = excluded.agrees "
            "WHERE excluded.reviewed_at >= feedback.reviewed_at",
            (
                feedback.message_id,
                message.pipeline,
                _ts(feedback.reviewed_at),
                feedback.model_dump_json(),
                message.model_dump_json(),
                None if agrees is None else int(agrees),
            ),
        )
        return joined

    def _archived(self, message_id: str) -> ArchivedMessage | None:
        row = self._db.execute(
            "SELECT record FROM archived WHERE message_id = ?", (message_id,)
        ).fetchone()
        return None if row is None else ArchivedMessage.model_validate_json(row[0])

    def _delete_pending(self, feedback: Feedback) -> None:
        self._db.execute(
            "DELETE FROM pending WHERE message_id = ? AND feedback = ?",
            (feedback.message_id, feedback.model_dump_json()),
        )

    def _pending_in(self, ids: Sequence[str]) -> list[Pending]:
        out: list[Pending] = []
        # SQLite caps bound parameters; 500 per query stays under every build's limit.
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT {_PENDING_COLUMNS} FROM pending WHERE message_id IN ({marks})"
            out.extend(_pending(row) for row in self._db.execute(query, chunk))
        return out


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK on any exception (the connection is in autocommit)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


_PENDING_COLUMNS = (
    "feedback, received_at, src_topic, src_partition, src_offset, src_timestamp, "
    "src_received_at, src_key, src_value"
)

_RecordColumns = tuple[
    str | None, int | None, int | None, float | None, float | None, bytes | None, bytes | None
]


def _record_columns(record: InboundRecord | None) -> _RecordColumns:
    if record is None:
        return (None, None, None, None, None, None, None)
    return (
        record.topic,
        record.partition,
        record.offset,
        None if record.timestamp is None else _ts(record.timestamp),
        _ts(record.received_at),
        record.key,
        record.value,
    )


def _pending(row: tuple[object, ...]) -> Pending:
    raw, received_at, topic, partition, offset, timestamp, src_received_at, key, value = row
    assert isinstance(raw, str) and isinstance(received_at, float)
    record = None
    if isinstance(topic, str) and isinstance(partition, int) and isinstance(offset, int):
        record = InboundRecord(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key if isinstance(key, bytes) else None,
            value=value if isinstance(value, bytes) else None,
            timestamp=_moment(timestamp) if isinstance(timestamp, float) else None,
            received_at=_moment(
                src_received_at if isinstance(src_received_at, float) else received_at
            ),
        )
    return Pending(Feedback.model_validate_json(raw), record, _moment(received_at))


def write_dataset(rows: Sequence[Joined], path: Path) -> int:
    """Write the training rows of `rows` (those whose right label is known) as CSV with
    DATASET_COLUMNS; the number of rows written. Multi-label rows carry their label set as a
    JSON list in `label`. Written to a temporary file first, so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(DATASET_COLUMNS)
        for row in rows:
            label = row.label
            if label is None:
                continue
            msg, fb = row.message, row.feedback
            writer.writerow(
                (
                    msg.text,
                    label,
                    msg.message_id,
                    msg.pipeline,
                    msg.kind.value,
                    msg.category,
                    f"{msg.confidence:.6f}",
                    msg.classifier.version,
                    "" if fb.routing_correct is None else str(fb.routing_correct).lower(),
                    fb.reviewer,
                    fb.reviewed_at.isoformat(),
                )
            )
            written += 1
    tmp.replace(path)
    return written
