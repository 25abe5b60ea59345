"""The worker on the real tansu broker with one classify-and-tag model in both roles."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from stream.config import BrokerSettings, TopicSettings
from stream.samples import sample_records
from stream.view import origin_id
from tests.stream.conftest import WorkerProcess
from tests.stream.test_worker_integration import _send, _stop
from tests.stream.watch import Watcher, read_outputs

pytestmark = pytest.mark.integration


async def test_a_worker_with_one_classify_and_tag_model_routes_every_message(
    broker_settings: BrokerSettings,
    unique_topics: TopicSettings,
    worker_env: dict[str, str],
    start_worker: Callable[[dict[str, str]], WorkerProcess],
    tiny_multitask_artifact: Path,
) -> None:
    records = list(sample_records(80, malformed_ratio=0.1, seed=31, id_prefix="mt"))
    valid = {r.key for r in records if r.expected_reason is None}
    malformed = {r.key: r.expected_reason for r in records if r.expected_reason is not None}
    await _send(broker_settings, unique_topics, records)
    # The model dir wins over the separate classifier and NER dirs worker_env also sets.
    env = {**worker_env, "TEXTROUTE_WORKER_MODEL_DIR": str(tiny_multitask_artifact)}

    worker = start_worker(env)
    async with Watcher(broker_settings, unique_topics) as watcher:
        await watcher.wait_until(lambda o: o.seen() >= valid | set(malformed), worker)
    assert await _stop(worker) == 0, worker.log()[-3000:]
    out = await read_outputs(broker_settings, unique_topics)

    assert set(out.routed_ids) == valid
    assert {origin_id(d): d.reason for d in out.dead} == malformed
    assert out.duplicates() == 0
    for event in out.events:
        assert event.classifier.name == "tiny-multitask" and event.ner == event.classifier
        assert event.category in {"World", "Sports", "Business", "Sci/Tech"}
    assert any(e.entities for e in out.events), "sample messages name people and places"
