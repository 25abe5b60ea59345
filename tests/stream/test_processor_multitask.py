"""The worker with one classify-and-tag model: one inference call per batch, same isolation."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

import pytest

from inference import InferenceSettings, ItemError, MultiTaskPredictor, load_predictor
from schemas.entities import Classification, Entity
from schemas.events import DeadLetterReason
from schemas.manifest import MANIFEST_FILE
from stream.config import TopicSettings, WorkerSettings
from stream.model_set import ModelSet
from stream.models import ReloadingModels
from stream.processor import BatchProcessor, InboundRecord
from stream.routing import Router, parse_rules
from stream.samples import sample_records

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
RULES = """
default_queue: triage
categories: {World: desk.world, Sports: desk.sports, Business: desk.business}
entity_rules:
  - {name: watch, type: ORG, values: [google], queue: desk.watch}
"""


@pytest.fixture(scope="module")
def model(tiny_multitask_artifact: Path) -> MultiTaskPredictor:
    predictor = load_predictor(tiny_multitask_artifact, InferenceSettings(backend="onnx"))
    assert isinstance(predictor, MultiTaskPredictor)
    return predictor


class _Spy:
    """The multi-task predictor, counting its calls; a text containing POISON crashes one."""

    def __init__(self, inner: MultiTaskPredictor) -> None:
        self._inner = inner
        self.manifest = inner.manifest
        self.backend_name = inner.backend_name
        self.calls: list[str] = []

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        self.calls.append("classify")
        return self._inner.classify(texts)

    def entities(self, texts: Sequence[object]) -> list[list[Entity] | ItemError]:
        self.calls.append("entities")
        return self._inner.entities(texts)

    def classify_and_tag(
        self, texts: Sequence[object]
    ) -> list[tuple[Classification, list[Entity]] | ItemError]:
        self.calls.append("classify_and_tag")
        if any("POISON" in str(t) for t in texts):
            raise RuntimeError("kernel exploded")
        return self._inner.classify_and_tag(texts)


def _processor(models: ModelSet) -> BatchProcessor:
    return BatchProcessor.single(
        lambda: models, Router(parse_rules(RULES)), TOPICS, parallel_models=False
    )


def _article(offset: int, message_id: str, body: str) -> InboundRecord:
    value = json.dumps({"id": message_id, "headline": "", "body": body, "source": "AP"})
    return InboundRecord(TOPICS.article, 0, offset, message_id.encode(), value.encode(), NOW, NOW)


def test_one_model_in_both_roles_runs_once_per_batch(model: MultiTaskPredictor) -> None:
    spy = _Spy(model)
    records = [
        _article(0, "a0", "john smith visited paris for google"),
        _article(1, "a1", "the team win the game"),
        _article(2, "a2", "stock market bank profit"),
    ]

    result = _processor(ModelSet(spy, spy)).process(records)

    assert spy.calls == ["classify_and_tag"]
    assert result.dead_letters == [] and result.classify_s > 0 and result.ner_s == 0
    first, _, third = result.events
    assert [e.type for e in first.entities] == ["PER", "LOC", "ORG"]
    assert first.route == "desk.watch", "entity rules see the entities of the one pass"
    assert third.category == "Business"
    for event in result.events:
        assert event.classifier.name == "tiny-multitask"
        assert event.ner == event.classifier


def test_events_match_the_two_call_path_of_the_same_model(model: MultiTaskPredictor) -> None:
    samples = list(sample_records(30, malformed_ratio=0.2, seed=5))
    records = [
        InboundRecord(TOPICS.topic_for(s.kind), 0, i, s.key.encode(), s.value, NOW, NOW)
        for i, s in enumerate(samples)
    ]
    clock = lambda: NOW  # noqa: E731
    router = Router(parse_rules(RULES))
    joint = BatchProcessor.single(lambda: ModelSet(model, model), router, TOPICS, clock=clock)
    spy = _Spy(model)
    # A different object in the NER role: the worker takes the two-call path.
    two_calls = BatchProcessor.single(lambda: ModelSet(model, spy), router, TOPICS, clock=clock)

    a, b = joint.process(records), two_calls.process(records)

    assert spy.calls == ["entities"]
    assert [e.model_dump(exclude={"ner"}) for e in a.events] == [
        e.model_dump(exclude={"ner"}) for e in b.events
    ]
    assert len(a.events) + len(a.dead_letters) == len(samples)
    assert {d.reason for d in a.dead_letters} == {d.reason for d in b.dead_letters}


def test_a_text_that_crashes_the_model_is_dead_lettered_alone(model: MultiTaskPredictor) -> None:
    spy = _Spy(model)
    records = [
        _article(0, "a0", "stock profit"),
        _article(1, "a1", "POISON pill"),
        _article(2, "a2", "team win cup"),
    ]

    result = _processor(ModelSet(spy, spy)).process(records)

    assert [e.message_id for e in result.events] == ["a0", "a2"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.INFERENCE_ERROR and dead.message_id == "a1"
    assert dead.error_message.startswith("classify-and-tag: RuntimeError: kernel exploded")
    assert spy.calls == ["classify_and_tag"] * (1 + len(records))


def test_an_item_error_of_the_model_keeps_its_reason(tiny_multitask_artifact: Path) -> None:
    strict = load_predictor(tiny_multitask_artifact, InferenceSettings(max_chars=20))
    records = [_article(0, "short", "stock profit"), _article(1, "long", "stock market " * 3)]

    result = _processor(ModelSet(strict, strict)).process(records)

    assert [e.message_id for e in result.events] == ["short"]
    (dead,) = result.dead_letters
    assert dead.reason is DeadLetterReason.TEXT_TOO_LONG


def test_only_one_object_in_both_roles_counts_as_one_model(
    model: MultiTaskPredictor, tiny_multitask_artifact: Path
) -> None:
    other = load_predictor(tiny_multitask_artifact, InferenceSettings(backend="onnx"))
    joint: object = ModelSet(model, model).joint
    assert joint is model
    assert ModelSet(model, None).joint is None
    assert ModelSet(model, other).joint is None


def test_one_directory_for_both_roles_is_loaded_once_and_reloaded_once(
    tiny_multitask_artifact: Path, tmp_path: Path
) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_multitask_artifact, art)
    loads: list[Path] = []

    def loader(path: Path) -> Any:
        loads.append(path)
        return load_predictor(path, InferenceSettings(backend="onnx"))

    models = ReloadingModels(art, tmp_path / "." / "art", loader)
    assert len(loads) == 1 and models().joint is cast(object, models().classifier)
    manifest = json.loads((art / MANIFEST_FILE).read_text(encoding="utf-8"))
    manifest["version"] = "20991231T000000Z"
    (art / MANIFEST_FILE).write_text(json.dumps(manifest), encoding="utf-8")

    assert sorted(models.check_for_update()) == ["classifier", "ner"]
    assert len(loads) == 2 and models().joint is cast(object, models().classifier)
    assert models.versions() == {"classifier": "20991231T000000Z", "ner": "20991231T000000Z"}


def test_model_dir_puts_one_artifact_in_both_roles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTROUTE_WORKER_MODEL_DIR", "/models/multitask")
    assert WorkerSettings().model_dirs() == (Path("/models/multitask"),) * 2
    monkeypatch.setenv("TEXTROUTE_WORKER_MODEL_DIR", "")
    monkeypatch.setenv("TEXTROUTE_WORKER_CLASSIFIER_DIR", "/models/c")
    monkeypatch.setenv("TEXTROUTE_WORKER_NER_DIR", "/models/n")
    assert WorkerSettings().model_dirs() == (Path("/models/c"), Path("/models/n"))
