"""A worker with a shadow candidate on the real broker: it routes exactly as without one, and
writes one archive record and one shadow pair per routed message."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from schemas.artifact import read_manifest
from schemas.events import DeadLetter, RoutingEvent
from schemas.feedback import ArchivedMessage, ShadowEvent
from schemas.manifest import MANIFEST_FILE
from stream.config import BrokerSettings, TopicSettings
from stream.inputs import to_outbound
from stream.samples import sample_records
from stream.topics import ensure_topics, produce, read_topics
from stream.view import origin_id
from tests.stream.conftest import WorkerProcess
from tests.stream.watch import Outputs, Watcher

pytestmark = pytest.mark.integration

StartWorker = Callable[..., WorkerProcess]
#: What differs between two workers routing the same record: when each did it.
TIMES = {"received_at", "routed_at", "processing_ms", "first_seen_at"}


@pytest.fixture(scope="module")
def candidate_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A barely trained tiny topic classifier, exported like the active one: a real candidate
    that disagrees with the active classifier on many texts."""
    from training.export import EvalSample, GateSettings, export_artifact
    from training.tiny import TOPICS, build_tiny_classifier, topic_texts

    out = build_tiny_classifier(tmp_path_factory.mktemp("candidate") / "candidate", steps=3)
    texts, labels = topic_texts(64, seed=2)
    export_artifact(
        out,
        eval_data=EvalSample.from_labelled(texts, labels, TOPICS),
        gates=GateSettings(enabled=False),
    )
    manifest = read_manifest(out, verify=False).model_copy(update={"name": "tiny-candidate"})
    (out / MANIFEST_FILE).write_text(manifest.model_dump_json(), encoding="utf-8")
    return out


def _outputs_of(topics: TopicSettings) -> TopicSettings:
    """The same inbound topics, other output topics: a second worker beside the first."""
    tag = topics.routed.split(".")[0] + "-shadowed"
    return topics.model_copy(
        update={
            "routed": f"{tag}.routed",
            "dead_letter": f"{tag}.dead-letter",
            "feedback": f"{tag}.feedback",
            "archive": f"{tag}.archive",
            "shadow": f"{tag}.shadow",
        }
    )


def _without_times(message: RoutingEvent | DeadLetter) -> dict[str, Any]:
    return {k: v for k, v in message.model_dump(mode="json").items() if k not in TIMES}


async def _read(broker: BrokerSettings, topic: str) -> list[tuple[str, bytes]]:
    records = await read_topics(broker, [topic], idle_s=1.0)
    return [(r.key.decode() if r.key else "", r.value or b"") for r in records]


async def test_a_shadow_candidate_changes_no_routing_and_every_routed_message_is_archived(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    candidate_artifact: Path,
    start_worker: StartWorker,
) -> None:
    plain_topics, shadow_topics = unique_topics, _outputs_of(unique_topics)
    records = list(sample_records(90, malformed_ratio=0.1, seed=23, id_prefix="sh"))
    routed_ids = {r.key for r in records if r.expected_reason is None}
    assert 0 < len(routed_ids) < len(records)
    await ensure_topics(
        broker_settings,
        [*plain_topics.all_topics(), *shadow_topics.all_topics()],
        plain_topics.partitions,
    )
    await produce(broker_settings, to_outbound(records, plain_topics))

    # One message a batch: the int8 models quantize activations per batch, so a score depends
    # on the texts batched with it, and the two workers need not batch alike.
    env = {**worker_env, "TEXTROUTE_WORKER_BATCH_SIZE": "1"}
    plain = start_worker(env)
    shadowed = start_worker(
        {
            **env,
            **shadow_topics.as_env(),
            "TEXTROUTE_WORKER_APP_ID": env["TEXTROUTE_WORKER_APP_ID"] + "-shadowed",
            "TEXTROUTE_WORKER_SHADOW_CLASSIFIER_DIR": str(candidate_artifact),
        }
    )
    everything = {r.key for r in records}

    async def routed_by(worker: WorkerProcess, topics: TopicSettings) -> Outputs:
        async with Watcher(broker_settings, topics) as watcher:
            return await watcher.wait_until(lambda o: o.seen() >= everything, worker, 180.0)

    without, with_shadow = await asyncio.gather(
        routed_by(plain, plain_topics), routed_by(shadowed, shadow_topics)
    )

    # The same events and dead letters, field for field, but when they were made.
    assert without.duplicates() == with_shadow.duplicates() == 0
    assert set(without.routed_ids) == routed_ids
    assert {e.message_id: _without_times(e) for e in with_shadow.events} == {
        e.message_id: _without_times(e) for e in without.events
    }
    assert {origin_id(d): _without_times(d) for d in with_shadow.dead} == {
        origin_id(d): _without_times(d) for d in without.dead
    }

    # Both archive every routed message, once, keyed by its id; only one has a shadow.
    events = {e.message_id: e for e in with_shadow.events}
    for topics in (plain_topics, shadow_topics):
        archived = [
            (key, ArchivedMessage.model_validate_json(v))
            for key, v in await _read(broker_settings, topics.archive)
        ]
        assert Counter(key for key, _ in archived) == Counter(routed_ids)
        for key, record in archived:
            event = events[key]
            assert record.message_id == key and record.category == event.category
            assert record.route == event.route and record.classifier == event.classifier
            assert len(record.text) == event.model_text.length  # type: ignore[union-attr]
    assert await _read(broker_settings, plain_topics.shadow) == []
    pairs = [
        (key, ShadowEvent.model_validate_json(v))
        for key, v in await _read(broker_settings, shadow_topics.shadow)
    ]
    assert Counter(key for key, _ in pairs) == Counter(routed_ids)
    for key, pair in pairs:
        assert pair.active.category == events[key].category
        assert pair.candidate.model.name == "tiny-candidate"
        assert pair.agree == (pair.candidate.category == pair.active.category)
    # The candidate is a different model: were its answers routed by, events would differ.
    assert any(not pair.agree for _, pair in pairs)
    for worker in (plain, shadowed):
        worker.stop()
