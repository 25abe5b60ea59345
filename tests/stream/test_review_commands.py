"""`textroute feedback send|dataset|stats` and `textroute review-store`."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from schemas.events import DeadLetter, DeadLetterReason, ModelRef
from schemas.feedback import ArchivedMessage, Feedback
from schemas.messages import MessageKind
from stream.config import BrokerSettings, TopicSettings, WorkerSettings
from stream.errors import FeedbackFileError, ReviewStoreError
from stream.review_commands import register
from stream.review_service import labels_from_pipelines
from stream.review_store import ReviewStore
from stream.topics import OutboundRecord, ensure_topics, produce, read_topics, worker_topic_limits

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=timezone.utc)
#: Nothing listens there: a command that reached for the broker would fail with another error.
NO_BROKER = {"TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": "127.0.0.1:9"}


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _env(broker: BrokerSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        **topics.as_env(),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "COLUMNS": "200",
    }


def _archived(message_id: str, category: str, pipeline: str = "ticket") -> ArchivedMessage:
    return ArchivedMessage(
        message_id=message_id,
        kind=MessageKind.TICKET,
        pipeline=pipeline,
        text=f"text, of {message_id}",
        category=category,
        confidence=0.6,
        route=f"desk.{category}",
        review=True,
        classifier=ModelRef(name="tickets", version="v3"),
        routed_at=T0,
    )


# ---- feedback send ----

GOOD_CSV = (
    "message_id,label,labels,routing_correct,reviewer,reviewed_at,comment\n"
    'm1,billing,,false,ana,2026-03-01T10:00:00Z,"refund, really"\n'
    "m2,,a|b,,bo,,\n"
    'm3,,["x"],TRUE,cy,2026-03-01T10:00:00,\n'
)


ENTITY = '{"start": 4, "end": 2, "label": "ORG"}'
ONE = '{"message_id": "m1", "label": "x", "reviewer": "a"'


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("f.csv", GOOD_CSV + "m4,,,maybe,ana,,\n", ":5: routing_correct must be true or false"),
        ("f.csv", GOOD_CSV.replace("m2,,a|b", "m2,,[a"), ":3: labels '[a' is not a JSON list"),
        ("f.csv", GOOD_CSV + "m4,x,,,,,\n", ":5: reviewer: Field required"),
        ("f.csv", GOOD_CSV + "m4,x,,,ana,yesterday,\n", ":5: reviewed_at 'yesterday' is not"),
        ("f.csv", GOOD_CSV + "m4,,,,ana,,\n", ":5: <root>: Value error, feedback must carry"),
        ("f.csv", "message_id,reviewer,entities\nm1,ana,[]\n",
         ":1: unknown column(s) 'entities' (entities only in a JSON-lines file)"),
        ("f.csv", "id,reviewer,label\nm1,ana,x\n", ":1: unknown column(s) 'id'"),
        ("f.jsonl", ONE + "}\n" + '{"message_id": "m2",\n', ":2: not JSON"),
        ("f.jsonl", ONE + ', "extra": 1}\n', ":1: extra: Extra inputs are not permitted"),
        ("f.jsonl", '{"message_id": "m1", "reviewer": "a", "entities": [' + ENTITY + "]}\n",
         ":1: entities.0: Value error, entity end 2 must be after its start 4"),
        ("f.csv", "message_id,reviewer,label\n", ":1: the file holds no feedback"),
    ],
)  # fmt: skip
def test_send_refuses_a_malformed_file_naming_the_line_before_anything_is_sent(
    cli: typer.Typer, tmp_path: Path, name: str, text: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")

    result = CliRunner().invoke(cli, ["feedback", "send", str(path)], env=NO_BROKER)

    assert isinstance(result.exception, FeedbackFileError), result.output
    message = str(result.exception)
    assert "\n" not in message and message.endswith("; nothing was sent")
    assert message.startswith(str(tmp_path) + "/"), message
    assert f"{name}{problem}" in message, message


@pytest.mark.integration
def test_send_with_a_bad_row_exits_2_with_one_line_and_sends_nothing(
    broker_settings: BrokerSettings, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(broker_settings, [unique_topics.feedback], 1))
    path = tmp_path / "reviews.csv"
    path.write_text(GOOD_CSV + "m4,billing,,yes please,ana,,\n", encoding="utf-8")

    done = subprocess.run(
        [sys.executable, "-m", "stream", "feedback", "send", str(path)],
        env={**os.environ, **_env(broker_settings, unique_topics)},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "reviews.csv:5: routing_correct must be true or false" in lines[0]
    assert asyncio.run(read_topics(broker_settings, [unique_topics.feedback], idle_s=0.5)) == []


@pytest.mark.integration
def test_send_produces_every_row_keyed_by_message_id(
    cli: typer.Typer, broker_settings: BrokerSettings, unique_topics: TopicSettings, tmp_path: Path
) -> None:
    csv_file = tmp_path / "reviews.csv"
    csv_file.write_text(GOOD_CSV, encoding="utf-8")
    jsonl = tmp_path / "reviews.jsonl"
    entities = [{"start": 0, "end": 4, "label": "ORG"}]
    jsonl.write_text(
        json.dumps({"message_id": "m9", "reviewer": "di", "entities": entities}) + "\n\n"
        + json.dumps({"message_id": "m8", "reviewer": "di", "labels": "p|q",
                      "routing_correct": "false", "reviewed_at": "2026-03-02T08:00:00+01:00"})
        + "\n",
        encoding="utf-8",
    )  # fmt: skip
    env = _env(broker_settings, unique_topics)
    before = datetime.now(timezone.utc)

    first = CliRunner().invoke(cli, ["feedback", "send", str(csv_file)], env=env)
    second = CliRunner().invoke(cli, ["feedback", "send", str(jsonl)], env=env)

    assert first.exit_code == 0, first.output
    assert "sent 3 feedback records (3 messages) to " + unique_topics.feedback in first.output
    assert second.exit_code == 0, second.output
    got = asyncio.run(read_topics(broker_settings, [unique_topics.feedback], idle_s=0.5))
    sent = {r.key: Feedback.model_validate_json(r.value or b"") for r in got}
    assert sorted(sent) == [b"m1", b"m2", b"m3", b"m8", b"m9"]
    m1, m2, m3, m8, m9 = (sent[k] for k in sorted(sent))
    assert (m1.label, m1.routing_correct, m1.comment) == ("billing", False, "refund, really")
    assert m1.reviewed_at == datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc)
    assert (m2.labels, m2.reviewer, m2.label) == (["a", "b"], "bo", None)
    assert before <= m2.reviewed_at <= datetime.now(timezone.utc)  # default: now
    assert (m3.labels, m3.routing_correct) == (["x"], True)
    assert m3.reviewed_at.tzinfo is not None  # a time without a zone is UTC
    assert (m8.labels, m8.routing_correct) == (["p", "q"], False)
    assert m8.reviewed_at == datetime(2026, 3, 2, 7, 0, tzinfo=timezone.utc)
    assert m9.entities is not None and m9.entities[0].label == "ORG"


# ---- feedback dataset and stats ----


@pytest.fixture
def store_file(tmp_path: Path) -> Path:
    path = tmp_path / "store" / "review.sqlite"
    store = ReviewStore(path)
    store.add_archived(
        [
            _archived("m1", "billing"),
            _archived("m2", "billing"),
            _archived("m3", "tech"),
            _archived("n1", "World", pipeline="news"),
        ]
    )
    later = timedelta(minutes=1)
    for fb in (
        Feedback(message_id="m1", label="billing", reviewer="ana", reviewed_at=T0),
        Feedback(message_id="m2", label="sales", reviewer="bo", reviewed_at=T0 + later),
        Feedback(message_id="m3", routing_correct=False, reviewer="cy", reviewed_at=T0),
        Feedback(message_id="n1", routing_correct=True, reviewer="ana", reviewed_at=T0),
        Feedback(message_id="zz", label="tech", reviewer="ana", reviewed_at=T0),
    ):
        store.add_feedback(fb)
    store.close()
    return path


def test_dataset_writes_the_training_csv_and_says_what_it_skipped(
    cli: typer.Typer, store_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "reviewed.csv"

    result = CliRunner().invoke(
        cli,
        ["feedback", "dataset", "--store", str(store_file), "--pipeline", "ticket",
         "--out", str(out)],
        env={"COLUMNS": "200"},
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"wrote 2 rows to {out}; skipped 1 without a known label; reviewer agreement 33.3% "
        "(1 of 3 reviews confirm the model)"
    )
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["text"], r["label"], r["model_label"], r["reviewer"]) for r in rows] == [
        ("text, of m1", "billing", "billing", "ana"),
        ("text, of m2", "sales", "billing", "bo"),
    ]

    every = CliRunner().invoke(
        cli, ["feedback", "dataset", "--store", str(store_file), "--out", str(out)]
    )
    assert every.exit_code == 0 and "wrote 3 rows" in every.output and "50.0%" in every.output


def test_dataset_and_stats_default_to_the_worker_store(
    cli: typer.Typer, store_file: Path, tmp_path: Path
) -> None:
    env = {"TEXTROUTE_WORKER_REVIEW_STORE_PATH": str(store_file), "COLUMNS": "200"}
    result = CliRunner().invoke(cli, ["feedback", "stats"], env=env)

    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.output.strip().splitlines()]
    assert lines[0] == ["pipeline", "archived", "joined", "agree", "agreement"]
    assert lines[1] == ["news", "1", "1", "1", "100.0%"]
    assert lines[2] == ["ticket", "3", "3", "1", "33.3%"]
    assert result.output.strip().endswith("pending: 1 feedback records waiting for their message")


def test_a_missing_store_is_one_clear_error(cli: typer.Typer, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.sqlite"
    for args in (["dataset", "--out", str(tmp_path / "x.csv")], ["stats"]):
        result = CliRunner().invoke(cli, ["feedback", *args, "--store", str(missing)])
        assert isinstance(result.exception, ReviewStoreError)
        assert "no review store at" in str(result.exception)
    assert not missing.exists()


# ---- review-store ----


PIPELINES = """
models:
  topics: {classifier}
pipelines:
  news:
    kinds: [article]
    classifier: topics
    rules:
      default_queue: triage
    allow_unmapped_labels: true
"""


def _pipelines(tmp_path: Path, classifier: Path) -> Path:
    path = tmp_path / "pipelines.yaml"
    path.write_text(PIPELINES.replace("{classifier}", str(classifier)), encoding="utf-8")
    return path


def test_labels_come_from_the_manifests_of_the_pipelines_file(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    labels_of = labels_from_pipelines(_pipelines(tmp_path, tiny_classifier_trained))
    assert sorted(labels_of("news") or ()) == ["Business", "Sci/Tech", "Sports", "World"]
    assert labels_of("ticket") is None


@pytest.mark.integration
def test_review_store_command_keeps_the_store_until_sigterm(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    tiny_classifier_trained: Path,
    tmp_path: Path,
) -> None:
    topics = unique_topics
    store = tmp_path / "review.sqlite"
    pipelines = _pipelines(tmp_path, tiny_classifier_trained)
    asyncio.run(
        ensure_topics(
            broker_settings, topics.all_topics(), topics.partitions,
            configs=worker_topic_limits(WorkerSettings(topics=topics)),
        )
    )  # fmt: skip
    env = {
        **os.environ,
        **_env(broker_settings, topics),
        "TEXTROUTE_WORKER_FEEDBACK_WAIT_S": "60",
        "TEXTROUTE_WORKER_DATA_DIR": str(tmp_path / "data"),
    }
    args = [
        sys.executable, "-m", "stream", "review-store", "--store", str(store),
        "--pipelines", str(pipelines), "--app-id", f"{topics.email.split('.')[0]}-router",
        "--console-logs",
    ]  # fmt: skip
    log = (tmp_path / "review-store.log").open("wb")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        news = _archived("n1", "World", pipeline="news").model_copy(
            update={"kind": MessageKind.ARTICLE}
        )
        good = Feedback(message_id="n1", label="Sports", reviewer="ana", reviewed_at=T0)
        bad = {
            "message_id": "n1",
            "label": "Weather",
            "reviewer": "bo",
            "reviewed_at": T0.isoformat(),
        }
        asyncio.run(
            produce(
                broker_settings,
                [
                    OutboundRecord(topics.archive, b"n1", news.model_dump_json().encode()),
                    OutboundRecord(topics.feedback, b"n1", good.model_dump_json().encode()),
                    OutboundRecord(topics.feedback, b"n1", json.dumps(bad).encode()),
                ],
            )
        )
        deadline = time.monotonic() + 90
        dead: list[DeadLetter] = []
        while not dead:
            assert proc.poll() is None, (tmp_path / "review-store.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "review-store.log").read_text()
            time.sleep(0.3)
            got = asyncio.run(read_topics(broker_settings, [topics.dead_letter], idle_s=0.3))
            dead = [DeadLetter.model_validate_json(r.value or b"") for r in got]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, (tmp_path / "review-store.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()

    [letter] = dead
    assert letter.reason is DeadLetterReason.UNKNOWN_LABEL and "Weather" in letter.error_message
    reader = ReviewStore(store, create=False)
    assert [(j.feedback.message_id, j.label) for j in reader.joined()] == [("n1", "Sports")]
    reader.close()
