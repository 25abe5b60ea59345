"""Pipelines in the batch processor: shared models run once a batch, per-model reload, raw email."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from inference import InferenceSettings, MultiTaskPredictor, Predictor, load_predictor
from schemas.artifact import read_manifest
from schemas.events import DeadLetterReason
from schemas.manifest import MANIFEST_FILE, TaskKind
from schemas.messages import MessageKind
from stream.config import TopicSettings
from stream.errors import PipelineConfigError
from stream.pipeline_config import parse_pipelines
from stream.pipelines import Pipelines, SharedLoader, build_pipelines
from stream.processor import BatchProcessor, InboundRecord

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
CATEGORIES = "{World: q.world, Sports: q.sports, Business: q.business, Sci/Tech: q.tech}"


class Counting:
    """A real predictor that counts its calls and the texts it was given."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def manifest(self):  # type: ignore[no-untyped-def]
        return self.inner.manifest

    @property
    def backend_name(self) -> str:
        return self.inner.backend_name

    def classify(self, texts: Sequence[object]) -> list[object]:
        self.calls.append(len(texts))
        return list(self.inner.classify(texts))

    def entities(self, texts: Sequence[object]) -> list[object]:
        self.calls.append(len(texts))
        return list(self.inner.entities(texts))


def _loader(counters: dict[Path, Counting]):  # type: ignore[no-untyped-def]
    def load(artifact_dir: Path) -> Counting:
        counting = Counting(load_predictor(artifact_dir))
        counters[artifact_dir.resolve()] = counting
        return counting

    return load


def _pipelines_yaml(classifier: Path, ner: Path, *, article_ner: bool = True) -> str:
    return f"""
models: {{topics: {classifier}, ner: {ner}}}
pipelines:
  ticket: {{classifier: topics, attributes: {{priority: topics}}, rules: {{default_queue: t,
            categories: {CATEGORIES}}}}}
  email: {{classifier: topics, ner: ner, rules: {{default_queue: m, categories: {CATEGORIES}}},
           text: {{strip_quotes: true, strip_signature: true, include_text: true}}}}
  article: {{classifier: topics, {"ner: ner," if article_ner else ""}
             rules: {{default_queue: a, categories: {CATEGORIES}}}}}
"""


def _build(tmp_path: Path, yaml_text: str, counters: dict[Path, Counting]) -> Pipelines:
    resolved = parse_pipelines(yaml_text, source="test", base_dir=tmp_path)
    return build_pipelines(resolved, _loader(counters))


def _record(kind: MessageKind, offset: int, payload: dict[str, object]) -> InboundRecord:
    return InboundRecord(
        topic=TOPICS.topic_for(kind),
        partition=0,
        offset=offset,
        key=None,
        value=json.dumps(payload).encode(),
        timestamp=None,
        received_at=NOW,
    )


def _mixed(n: int) -> list[InboundRecord]:
    records = []
    for i in range(n):
        body = "the team win the cup match" if i % 2 else "shares and stock price jump"
        records += [
            _record(MessageKind.TICKET, 3 * i, {"id": f"t{i}", "customer": "c", "body": body}),
            _record(
                MessageKind.EMAIL,
                3 * i + 1,
                {"id": f"e{i}", "from": "a@x", "to": ["b@y"], "body": f"john smith: {body}"},
            ),
            _record(
                MessageKind.ARTICLE, 3 * i + 2, {"id": f"a{i}", "source": "wire", "body": body}
            ),
        ]
    return records


def test_a_model_shared_by_three_pipelines_and_an_attribute_is_loaded_once_and_run_once_a_batch(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    counters: dict[Path, Counting] = {}
    pipelines = _build(
        tmp_path, _pipelines_yaml(tiny_classifier_artifact, tiny_ner_artifact), counters
    )
    assert len(counters) == 2, "each directory loaded once"
    processor = BatchProcessor(pipelines, TOPICS, clock=lambda: NOW)
    result = processor.process(_mixed(4))

    assert result.dead_letters == []
    topics = counters[tiny_classifier_artifact.resolve()]
    ner = counters[tiny_ner_artifact.resolve()]
    # The classifier once over all 12 texts, once more as the tickets' priority attribute.
    assert topics.calls == [12, 4]
    assert ner.calls == [8], "the NER model once, over the emails and articles"
    by_id = {e.message_id: e for e in result.events}
    assert {by_id[f"t{i}"].pipeline for i in range(4)} == {"ticket"}
    assert by_id["t0"].attributes["priority"].label == by_id["t0"].category
    assert by_id["a1"].route == "q.sports" and by_id["a0"].route == "q.business"
    assert by_id["e0"].entities and by_id["t0"].entities == []


def test_a_kind_without_a_pipeline_is_dead_lettered_with_that_reason(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    yaml_text = f"""
models: {{topics: {tiny_classifier_artifact}}}
pipelines:
  ticket: {{classifier: topics, rules: {{default_queue: t, categories: {CATEGORIES}}}}}
"""
    processor = BatchProcessor(_build(tmp_path, yaml_text, {}), TOPICS, clock=lambda: NOW)
    result = processor.process(_mixed(1))
    assert [e.message_id for e in result.events] == ["t0"]
    assert {d.message_id: d.reason for d in result.dead_letters} == {
        "e0": DeadLetterReason.NO_PIPELINE,
        "a0": DeadLetterReason.NO_PIPELINE,
    }


def test_a_raw_mime_email_is_routed_on_its_text_part_with_attachments_counted(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    raw = (
        "From: Mary <mary@example.org>\r\nTo: desk@example.org\r\nSubject: match report\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
        "--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "the team win the cup match\r\n\r\nOn Mon, 2 Nov 2026, Bob wrote:\r\n"
        "> shares and stock price jump\r\n"
        "--XX\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
        'filename="a.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--XX--\r\n'
    )
    pipelines = _build(tmp_path, _pipelines_yaml(tiny_classifier_artifact, tiny_ner_artifact), {})
    processor = BatchProcessor(pipelines, TOPICS, clock=lambda: NOW)
    result = processor.process(
        [
            _record(MessageKind.EMAIL, 0, {"id": "r1", "raw": raw}),
            _record(MessageKind.EMAIL, 1, {"id": "r2", "raw": "no headers at all"}),
        ]
    )
    (event,) = result.events
    assert event.model_text is not None
    assert event.model_text.text == "match report\nthe team win the cup match"
    assert event.model_text.attachments == 1
    assert event.route == "q.sports"
    (dead,) = result.dead_letters
    assert dead.message_id == "r2" and dead.reason is DeadLetterReason.SCHEMA_ERROR
    assert "raw email cannot be parsed" in dead.error_message


def test_a_new_version_of_a_shared_model_is_reloaded_once_for_every_pipeline(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    topics = tmp_path / "topics"
    shutil.copytree(tiny_classifier_artifact, topics)
    counters: dict[Path, Counting] = {}
    pipelines = _build(tmp_path, _pipelines_yaml(topics, tiny_ner_artifact), counters)
    first = counters[topics.resolve()]
    manifest = read_manifest(topics, verify=False)
    manifest_path = topics / MANIFEST_FILE
    manifest_path.write_text(
        manifest.model_copy(update={"version": "20260101T000000Z"}).model_dump_json(),
        encoding="utf-8",
    )
    reloaded = pipelines.check_for_update()
    assert sorted(reloaded) == [
        "article/classifier",
        "email/classifier",
        "ticket/classifier",
        "ticket/priority/classifier",
    ]
    second = counters[topics.resolve()]
    assert second is not first, "loaded anew"
    models = [p.models().classifier for p in pipelines]
    assert all(m is second for m in models), "one predictor for every pipeline"
    assert pipelines.check_for_update() == []


def test_a_reload_that_breaks_a_pipelines_rules_keeps_its_old_model(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    topics = tmp_path / "topics"
    shutil.copytree(tiny_classifier_artifact, topics)
    counters: dict[Path, Counting] = {}
    pipelines = _build(tmp_path, _pipelines_yaml(topics, tiny_ner_artifact), counters)
    before = {p.name: p.models().classifier for p in pipelines}
    manifest = read_manifest(topics, verify=False)
    renamed = [*manifest.labels[:-1], "Weather"]
    (topics / MANIFEST_FILE).write_text(
        manifest.model_copy(update={"version": "2", "labels": renamed}).model_dump_json(),
        encoding="utf-8",
    )
    # The attribute has no rules to break, so only it takes the new version.
    assert pipelines.check_for_update() == ["ticket/priority/classifier"]
    assert {p.name: p.models().classifier for p in pipelines} == before


def test_the_shared_loader_reuses_a_directory_until_its_version_changes(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    topics = tmp_path / "topics"
    shutil.copytree(tiny_classifier_artifact, topics)
    loads: list[Path] = []

    def load(path: Path) -> Predictor:
        loads.append(path)
        return load_predictor(path)

    shared = SharedLoader(load)
    a, b = shared(topics), shared(tmp_path / "." / "topics")
    assert a is b and len(loads) == 1
    manifest = read_manifest(topics, verify=False)
    (topics / MANIFEST_FILE).write_text(
        manifest.model_copy(update={"version": "2"}).model_dump_json(), encoding="utf-8"
    )
    assert shared(topics) is not a and len(loads) == 2


def test_pipelines_refuse_one_kind_twice(tiny_classifier_artifact: Path) -> None:
    from stream.pipelines import Pipeline
    from stream.routing import Router, parse_rules

    rules = Router(parse_rules("default_queue: q"))

    def models():  # type: ignore[no-untyped-def]
        raise AssertionError("not called")

    one = Pipeline("a", (MessageKind.EMAIL,), models, rules)
    two = Pipeline("b", (MessageKind.EMAIL, MessageKind.TICKET), models, rules)
    with pytest.raises(PipelineConfigError, match="email is served by pipelines a and b"):
        Pipelines([one, two])


def test_an_attribute_reloaded_as_a_multi_label_model_is_refused_as_at_start(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    priority = tmp_path / "priority"
    shutil.copytree(tiny_classifier_artifact, priority)
    yaml_text = f"""
models: {{topics: {tiny_classifier_artifact}, priority: {priority}}}
pipelines:
  ticket: {{classifier: topics, attributes: {{priority: priority}},
            rules: {{default_queue: t, categories: {CATEGORIES}}}}}
"""
    pipelines = _build(tmp_path, yaml_text, {})
    manifest = read_manifest(priority, verify=False)
    (priority / MANIFEST_FILE).write_text(
        manifest.model_copy(
            update={
                "version": "2",
                "task": TaskKind.MULTI_LABEL,
                "thresholds": [0.5] * len(manifest.labels),
            }
        ).model_dump_json(),
        encoding="utf-8",
    )
    assert pipelines.check_for_update() == []


def test_a_pipelines_long_text_policy_reaches_its_predictors_which_share_one_graph(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    text = f"""
models: {{topics: {tiny_classifier_artifact}, ner: {tiny_ner_artifact}}}
pipelines:
  ticket: {{classifier: topics, long_text: chunks, chunk_stride: 8,
            rules: {{default_queue: t, categories: {CATEGORIES}}}}}
  email: {{classifier: topics, ner: ner, long_text: head_tail, attributes: {{topic: topics}},
           rules: {{default_queue: m, categories: {CATEGORIES}}}}}
  article: {{classifier: topics, long_text: head_tail,
             rules: {{default_queue: a, categories: {CATEGORIES}}}}}
"""
    loads: list[Path] = []

    def load(path: Path) -> Predictor | MultiTaskPredictor:
        loads.append(path)
        return load_predictor(path, InferenceSettings(backend="onnx"))

    resolved = parse_pipelines(text, source="test", base_dir=tmp_path)
    built = list(build_pipelines(resolved, load))
    ticket, email, article = (p.models() for p in built)
    classifiers: list[Any] = [ticket.classifier, email.classifier, article.classifier]
    policies = [(c.settings.long_text, c.settings.chunk_stride) for c in classifiers]
    assert policies == [("chunks", 8), ("head_tail", 32), ("head_tail", 32)]
    ner: Any = email.ner
    assert ner.settings.long_text == "head_tail"
    assert built[1].attribute_models()["topic"] is email.classifier, "attributes read alike"
    # One load per directory: one predictor per policy, all on the one loaded graph; pipelines
    # of one policy share a predictor, so a batch runs it once for all of them.
    assert len(loads) == 2
    assert email.classifier is article.classifier is not ticket.classifier
    assert len({id(c.backend) for c in classifiers}) == 1
    # The policy is how the predictor reads: head_tail reads the end truncation cuts off.
    long = " ".join(["the"] * 16 + ["game"] * 60 + ["stock market bank profit"] * 15)
    truncating = load_predictor(tiny_classifier_artifact, InferenceSettings(backend="onnx"))
    labels = [getattr(m.classify([long])[0], "label", None) for m in (truncating, *classifiers)]
    assert labels[0] == "Sports" and labels[2:] == ["Business", "Business"]
