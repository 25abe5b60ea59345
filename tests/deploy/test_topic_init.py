"""deploy/kafka/create-topics.sh against a stand-in kafka-topics.sh that records its calls."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "kafka" / "create-topics.sh"

# Stands in for Kafka's admin tool: logs each call, fails `--create` while a counter file
# says so (brokers not up yet), and reports FAKE_PARTITIONS on `--describe`.
FAKE_KAFKA_TOPICS = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case " $* " in
  *" --create "*)
    left=$(cat "$FAKE_FAILS" 2>/dev/null || echo 0)
    if [ "$left" -gt 0 ]; then
      echo $((left - 1)) > "$FAKE_FAILS"
      echo "Replication factor: 3 larger than available brokers: 1." >&2
      exit 1
    fi ;;
  *" --describe "*)
    printf 'Topic: x\\tPartitionCount: %s\\tReplicationFactor: 1\\n' "$FAKE_PARTITIONS" ;;
esac
exit 0
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_init(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    fake = tmp_path / "kafka-topics.sh"
    fake.write_text(FAKE_KAFKA_TOPICS)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    full_env = {
        "PATH": os.environ["PATH"],
        "KAFKA_TOPICS_BIN": str(fake),
        "FAKE_LOG": str(log),
        "FAKE_FAILS": str(tmp_path / "fails"),
        "FAKE_PARTITIONS": env.pop("FAKE_PARTITIONS", "6"),
        "TOPIC_INIT_DELAY_SECONDS": "0",
        **env,
    }
    proc = subprocess.run(
        ["bash", str(SCRIPT)], env=full_env, capture_output=True, text=True, timeout=60
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def creates(calls: list[str]) -> dict[str, str]:
    """Topic name -> its --create call."""
    out = {}
    for call in calls:
        if "--create" in call:
            words = call.split()
            out[words[words.index("--topic") + 1]] = call
    return out


def test_creates_every_topic_with_configured_partitions_replication_and_min_isr(
    tmp_path: Path,
) -> None:
    proc, calls = run_init(
        tmp_path,
        TEXTROUTE_BROKER_BOOTSTRAP_SERVERS="k1:9092,k2:9092",
        TEXTROUTE_TOPIC_EMAIL="in.email",
        TEXTROUTE_TOPIC_PARTITIONS="12",
        TEXTROUTE_TOPIC_REPLICATION="3",
        TEXTROUTE_TOPIC_MIN_INSYNC_REPLICAS="2",
        FAKE_PARTITIONS="12",
    )
    assert proc.returncode == 0, proc.stderr
    made = creates(calls)
    assert set(made) == {
        "in.email",
        "textroute.ticket",
        "textroute.article",
        "textroute.routed",
        "textroute.dead-letter",
        "textroute.shadow",
        "textroute.feedback",
        "textroute.archive",
    }
    for call in made.values():
        assert "--bootstrap-server k1:9092,k2:9092" in call
        assert "--if-not-exists" in call
        assert "--partitions 12" in call
        assert "--replication-factor 3" in call
        assert "--config min.insync.replicas=2" in call
    assert "all topics ready" in proc.stderr


def test_retries_until_enough_brokers_are_up(tmp_path: Path) -> None:
    (tmp_path / "fails").write_text("2")
    proc, calls = run_init(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sum("--create" in c and "textroute.email" in c for c in calls) == 3
    assert "attempt 2/30" in proc.stderr


def test_gives_up_with_a_clear_message_and_nonzero_exit(tmp_path: Path) -> None:
    (tmp_path / "fails").write_text("100")
    proc, _ = run_init(tmp_path, TOPIC_INIT_ATTEMPTS="3", TEXTROUTE_TOPIC_REPLICATION="3")
    assert proc.returncode != 0
    assert "giving up on textroute.email after 3 attempts" in proc.stderr
    assert "3 broker(s)" in proc.stderr


def test_grows_an_existing_topic_that_has_fewer_partitions(tmp_path: Path) -> None:
    proc, calls = run_init(tmp_path, TEXTROUTE_TOPIC_PARTITIONS="8", FAKE_PARTITIONS="3")
    assert proc.returncode == 0, proc.stderr
    alters = [c for c in calls if "--alter" in c]
    assert len(alters) == 8
    assert all("--partitions 8" in c for c in alters)


def test_leaves_topics_alone_when_partitions_already_match(tmp_path: Path) -> None:
    proc, calls = run_init(tmp_path, TEXTROUTE_TOPIC_PARTITIONS="6", FAKE_PARTITIONS="6")
    assert proc.returncode == 0, proc.stderr
    assert not [c for c in calls if "--alter" in c]


def test_passes_a_client_config_for_secured_clusters(tmp_path: Path) -> None:
    proc, calls = run_init(tmp_path, TOPIC_INIT_COMMAND_CONFIG="/etc/kafka/client.properties")
    assert proc.returncode == 0, proc.stderr
    assert calls and all("--command-config /etc/kafka/client.properties" in c for c in calls)


def test_shellcheck_finds_nothing() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    proc = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout


def test_topics_get_max_message_bytes_consistent_with_the_worker_limits(tmp_path: Path) -> None:
    from stream.config import WorkerSettings
    from stream.topics import worker_topic_limits

    env = {
        "TEXTROUTE_WORKER_MAX_MESSAGE_BYTES": "2000000",
        "TEXTROUTE_WORKER_MAX_OUTPUT_BYTES": "500000",
    }
    proc, calls = run_init(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    made = creates(calls)
    expected = worker_topic_limits(
        WorkerSettings(max_message_bytes=2_000_000, max_output_bytes=500_000)
    )
    assert set(made) == set(expected)
    for name, configs in expected.items():
        assert f"--config max.message.bytes={configs['max.message.bytes']}" in made[name]
        if "cleanup.policy" in configs:
            assert f"--config cleanup.policy={configs['cleanup.policy']}" in made[name]
