"""Stream fixtures: one embedded tansu broker per test session, unique topic names per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream.broker import EmbeddedBroker
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings

# Maps three of the tiny classifier's four labels, so Sci/Tech exercises the default queue.
TINY_RULES = """
default_queue: triage
review: {queue: human-review, min_confidence: 0.3}
categories: {World: desk.world, Sports: desk.sports, Business: desk.business}
entity_rules:
  - {name: watch, type: ORG, values: [google], queue: desk.watch}
"""


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real tansu broker on a free port, shared by the session."""
    log_file = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedBroker(EmbeddedBrokerSettings(port=0, log_file=log_file)) as broker:
        yield broker.bootstrap


@pytest.fixture
def broker_settings(kafka_broker: str) -> BrokerSettings:
    return BrokerSettings(bootstrap_servers=kafka_broker)


@pytest.fixture
def unique_topics() -> TopicSettings:
    """Topic names no other test uses, so tests sharing the broker never see each other."""
    tag = uuid.uuid4().hex[:8]
    return TopicSettings(
        email=f"t-{tag}.email",
        ticket=f"t-{tag}.ticket",
        article=f"t-{tag}.article",
        routed=f"t-{tag}.routed",
        dead_letter=f"t-{tag}.dead-letter",
        feedback=f"t-{tag}.feedback",
        archive=f"t-{tag}.archive",
        shadow=f"t-{tag}.shadow",
        partitions=3,
    )


class WorkerProcess:
    """A `python -m stream worker` subprocess (or another worker module) with its own log."""

    def __init__(
        self, env: dict[str, str], log_path: Path, module: tuple[str, ...] = ("stream", "worker")
    ) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *module],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 60.0) -> int:
        return self.proc.wait(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def worker_env(
    kafka_broker: str,
    unique_topics: TopicSettings,
    tiny_classifier_artifact: Path,
    tiny_ner_artifact: Path,
    tmp_path: Path,
) -> dict[str, str]:
    """Environment for a worker on the session broker, this test's topics and the tiny models."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(TINY_RULES, encoding="utf-8")
    return {
        **os.environ,
        **unique_topics.as_env(),
        "TEXTROUTE_BROKER_BOOTSTRAP_SERVERS": kafka_broker,
        "TEXTROUTE_WORKER_APP_ID": f"{unique_topics.email.split('.')[0]}-router",
        "TEXTROUTE_WORKER_CLASSIFIER_DIR": str(tiny_classifier_artifact),
        "TEXTROUTE_WORKER_NER_DIR": str(tiny_ner_artifact),
        "TEXTROUTE_WORKER_RULES_PATH": str(rules),
        "TEXTROUTE_WORKER_DATA_DIR": str(tmp_path / "faust"),
        "TEXTROUTE_WORKER_RELOAD_INTERVAL_S": "0",
        "TEXTROUTE_INFERENCE_THREADS": "1",
    }


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers as subprocesses; any still running at teardown are killed."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], *module: str) -> WorkerProcess:
        log_path = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess(env, log_path, module) if module else WorkerProcess(env, log_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
