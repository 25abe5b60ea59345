"""The review loop's commands: `textroute feedback send|dataset|stats` and `review-store`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stream.commands import BootstrapOpt, Opt, _broker, _settings, console, err
from stream.errors import FeedbackFileError

if TYPE_CHECKING:
    from schemas.feedback import Feedback
    from stream.config import WorkerSettings
    from stream.metrics import StreamMetrics
    from stream.review_store import LabelsOf, ReviewStore

#: The fields of a feedback row; `entities` only in JSON lines (a list of objects).
FEEDBACK_FIELDS = (
    "message_id",
    "label",
    "labels",
    "routing_correct",
    "reviewer",
    "reviewed_at",
    "comment",
    "entities",
)
_CSV_FIELDS = tuple(f for f in FEEDBACK_FIELDS if f != "entities")
_REQUIRED = ("message_id", "reviewer")

StoreOpt = Annotated[
    Path | None,
    Opt(
        "--store",
        help="The review store (SQLite); default TEXTROUTE_WORKER_REVIEW_STORE_PATH, else "
        "DATA_DIR/review.sqlite.",
    ),
]


# ---- reading a feedback file ----


def _fail(path: Path, line: int, problem: str) -> FeedbackFileError:
    return FeedbackFileError(f"{path}:{line}: {problem}; nothing was sent")


def _labels(value: object) -> object:
    """`labels` as a list: a JSON list, or names joined by '|' (a CSV cell)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"labels {text[:60]!r} is not a JSON list ({exc.msg})") from exc
    return [part.strip() for part in text.split("|") if part.strip()]


def _flag(value: object) -> object:
    """`routing_correct` from true/false text (a CSV cell, or a string in JSON)."""
    if not isinstance(value, str):
        return value
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise ValueError(f"routing_correct must be true or false, not {value[:40]!r}")
    return text == "true"


def _moment(value: object, now: datetime) -> object:
    """`reviewed_at`: now when absent; a time without a zone is taken as UTC."""
    if value is None:
        return now
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"reviewed_at {value[:40]!r} is not an ISO 8601 time, e.g. 2026-01-31T14:05:00Z"
            ) from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
    return value


def _fields(values: Mapping[str, Any], now: datetime, *, csv: bool) -> dict[str, Any]:
    """A row's values as Feedback fields: blank CSV cells left out, text converted."""
    fields = {
        k: v
        for k, v in values.items()
        if not (csv and (v is None or (isinstance(v, str) and not v.strip())))
    }
    if csv:
        fields = {k: v.strip() if k != "comment" else v for k, v in fields.items()}
    if "labels" in fields:
        fields["labels"] = _labels(fields["labels"])
    if "routing_correct" in fields:
        fields["routing_correct"] = _flag(fields["routing_correct"])
    fields["reviewed_at"] = _moment(fields.get("reviewed_at"), now)
    return fields


def read_feedback(path: Path, *, now: datetime | None = None) -> list[Feedback]:
    """Every row of a CSV (.csv, .tsv) or JSON-lines (.jsonl, .ndjson) feedback file, all
    validated: the first malformed row raises FeedbackFileError naming its line."""
    from pydantic import ValidationError

    from schemas.feedback import Feedback
    from stream._pydantic import summarize_validation_error
    from stream.user_files import CSV_SUFFIXES, UserFile

    now = now or datetime.now(timezone.utc)
    source = UserFile.open(path)
    csv = path.suffix.lower() in CSV_SUFFIXES
    if csv:
        unknown = [c for c in source.columns if c not in _CSV_FIELDS]
        if unknown:
            extra = " (entities only in a JSON-lines file)" if "entities" in unknown else ""
            raise _fail(
                path,
                1,
                f"unknown column(s) {', '.join(map(repr, unknown))}{extra}; the columns are "
                f"{', '.join(_CSV_FIELDS)}",
            )
        missing = [c for c in _REQUIRED if c not in source.columns]
        if missing:
            raise _fail(path, 1, f"no {' or '.join(missing)} column")
    out: list[Feedback] = []
    for row in source.rows():
        if row.values is None:
            raise _fail(path, row.line, row.problem or "not a row")
        try:
            fields = _fields(row.values, now, csv=csv)
            feedback = Feedback.model_validate(fields)
        except ValidationError as exc:
            raise _fail(path, row.line, summarize_validation_error(exc)) from exc
        except ValueError as exc:
            raise _fail(path, row.line, str(exc)) from exc
        out.append(feedback)
    if not out:
        raise _fail(path, 1, "the file holds no feedback")
    return out


# ---- commands ----


def send_command(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV (.csv, .tsv) or JSON-lines (.jsonl, .ndjson) file, UTF-8: message_id, "
            "reviewer, and label, labels (a JSON list or names joined by '|'), routing_correct "
            "(true/false) and/or entities (JSON lines only); reviewed_at (ISO 8601, default "
            "now) and comment optional."
        ),
    ],
    bootstrap: BootstrapOpt = None,
) -> None:
    """Send reviewers' feedback (CSV or JSON lines) to the feedback topic.

    Every row is checked first: a malformed one stops the command with nothing sent."""
    from stream.config import TopicSettings, WorkerSettings
    from stream.topics import OutboundRecord, ensure_topics, produce, worker_topic_limits

    items = read_feedback(file)
    broker, topics = _broker(bootstrap), _settings(TopicSettings)
    limits = worker_topic_limits(_settings(WorkerSettings, topics=topics))
    records = [
        OutboundRecord(
            topics.feedback, item.message_id.encode("utf-8"), item.model_dump_json().encode()
        )
        for item in items
    ]

    async def send() -> int:
        await ensure_topics(
            broker, [topics.feedback], topics.partitions, topics.replication, configs=limits
        )
        return await produce(broker, records)

    sent = asyncio.run(send())
    ids = len({item.message_id for item in items})
    console.print(
        f"sent [bold]{sent}[/] feedback records ({ids} messages) to {topics.feedback} at "
        f"{broker.bootstrap_servers}"
    )


def _store_file(store: Path | None) -> Path:
    from stream.config import WorkerSettings

    if store is not None:
        return store
    settings: WorkerSettings = _settings(WorkerSettings)
    return settings.review_store_file()


def _open_store(store: Path | None) -> ReviewStore:
    from stream.review_store import ReviewStore

    return ReviewStore(_store_file(store), create=False)


def _percent(agree: int, judged: int) -> str:
    return f"{100 * agree / judged:.1f}%" if judged else "n/a"


def dataset_command(
    out: Annotated[Path, Opt("--out", "-o", help="The CSV file to write.")],
    store: StoreOpt = None,
    pipeline: Annotated[
        str | None, Opt(help="Only this pipeline's messages (their labels are its own).")
    ] = None,
) -> None:
    """Write the joined feedback as a training CSV for `textroute train classify`.

    Columns text and label, then provenance (message, model prediction, reviewer)."""
    from stream.review_store import write_dataset

    review = _open_store(store)
    try:
        rows = review.joined(pipeline=pipeline)
        written = write_dataset(rows, out)
        agree, judged = review.agreement(pipeline=pipeline)
    finally:
        review.close()
    console.print(
        f"wrote [bold]{written}[/] rows to {out}; skipped {len(rows) - written} without a "
        f"known label; reviewer agreement {_percent(agree, judged)} ({agree} of {judged} "
        "reviews confirm the model)",
        highlight=False,
    )


def stats_command(store: StoreOpt = None) -> None:
    """Archived messages, joined feedback and agreement per pipeline; pending feedback."""
    from rich.table import Table

    review = _open_store(store)
    try:
        stats = review.stats()
        pending = review.pending_count()
    finally:
        review.close()
    table = Table(box=None)
    for column in ("pipeline", "archived", "joined", "agree", "agreement"):
        table.add_column(column, justify="left" if column == "pipeline" else "right")
    for s in stats:
        table.add_row(
            s.pipeline,
            f"{s.archived:,}",
            f"{s.joined:,}",
            f"{s.agree:,}",
            _percent(s.agree, s.judged),
        )
    if stats:
        console.print(table)
    else:
        console.print("the review store holds no archived message nor feedback yet")
    console.print(f"pending: {pending:,} feedback records waiting for their message")


def review_store_command(
    bootstrap: BootstrapOpt = None,
    pipelines: Annotated[
        Path | None,
        Opt(
            help="Pipelines YAML whose classifiers' labels feedback is checked against (read "
            "from their manifests; no model is loaded); default "
            "TEXTROUTE_WORKER_PIPELINES_PATH, else labels are not checked."
        ),
    ] = None,
    store: StoreOpt = None,
    app_id: Annotated[
        str | None, Opt(help="The workers' app id; the consumer group is APP_ID.review.")
    ] = None,
    metrics_port: Annotated[int | None, Opt(help="Serve Prometheus /metrics here.")] = None,
    log_level: Annotated[str | None, Opt(help="DEBUG, INFO, WARNING or ERROR.")] = None,
    console_logs: Annotated[
        bool, Opt("--console-logs", help="Human-readable logs instead of JSON lines.")
    ] = False,
) -> None:
    """Keep the review store here, for workers with TEXTROUTE_WORKER_REVIEW_STORE=false.

    Run exactly one per deployment (the store needs every partition). Until SIGTERM/Ctrl-C."""
    from stream.config import WorkerSettings
    from stream.logs import configure_logging
    from stream.metrics import StreamMetrics
    from stream.review_service import labels_from_pipelines

    settings: WorkerSettings = _settings(
        WorkerSettings,
        broker=_broker(bootstrap),
        app_id=app_id,
        review_store_path=store,
        metrics_port=metrics_port,
        log_level=log_level.upper() if log_level else None,
        log_json=False if console_logs else None,
    )
    source = pipelines or settings.pipelines_path
    labels_of = labels_from_pipelines(source) if source is not None else None
    configure_logging(settings.log_level, json=settings.log_json)
    if labels_of is None:
        err.print("no pipelines file: feedback labels are not checked against the models")
    metrics = StreamMetrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_port)
    asyncio.run(run_review_store(settings, metrics, labels_of))


async def run_review_store(
    settings: WorkerSettings, metrics: StreamMetrics, labels_of: LabelsOf | None
) -> None:
    """The review service until SIGTERM or SIGINT."""
    import contextlib
    import signal

    from stream.review_service import ReviewService

    service = ReviewService(settings, metrics, labels_of=labels_of)
    task = asyncio.ensure_future(service.run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def register(app: typer.Typer) -> None:
    """Add `feedback send|dataset|stats` and `review-store` to the `textroute` app."""
    feedback = typer.Typer(
        help="Reviewers' feedback: send it, and read the review store (joined dataset, stats).",
        no_args_is_help=True,
    )
    feedback.command("send")(send_command)
    feedback.command("dataset")(dataset_command)
    feedback.command("stats")(stats_command)
    app.add_typer(feedback, name="feedback")
    app.command("review-store")(review_store_command)
