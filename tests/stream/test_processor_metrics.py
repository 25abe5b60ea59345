"""Drift metrics: what the classifiers predict per pipeline, beside what they were trained on."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from inference import Predictor, load_predictor
from schemas.artifact import read_manifest
from schemas.manifest import MANIFEST_FILE, ModelManifest, TaskKind
from stream.config import TopicSettings
from stream.metrics import StreamMetrics, training_label_share
from stream.model_set import ModelSet
from stream.pipeline_config import parse_pipelines
from stream.pipelines import build_pipelines
from stream.processor import BatchProcessor, InboundRecord, sent_to_review
from stream.routing import Router, parse_rules
from stream.samples import sample_records

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
CATEGORIES = "{World: q.world, Sports: q.sports, Business: q.business, Sci/Tech: q.tech}"


@pytest.fixture(scope="module")
def classifier(tiny_classifier_artifact: Path) -> Predictor:
    return load_predictor(tiny_classifier_artifact)


def _records(n: int) -> list[InboundRecord]:
    return [
        InboundRecord(TOPICS.topic_for(r.kind), 0, i, r.key.encode(), r.value, NOW, NOW)
        for i, r in enumerate(sample_records(n, seed=9))
    ]


def _value(metrics: StreamMetrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def _samples(metrics: StreamMetrics, name: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(s.labels.values()): s.value
        for family in metrics.registry.collect()
        for s in family.samples
        if s.name == name
    }


def test_every_routed_message_is_counted_with_its_confidence_labels_and_review(
    classifier: Predictor,
) -> None:
    models = ModelSet(classifier)  # type: ignore[arg-type]
    records = _records(40)
    # A review threshold amid the tiny model's confidences: some messages go to people.
    unreviewed = BatchProcessor.single(
        lambda: models, Router(parse_rules(f"default_queue: t\ncategories: {CATEGORIES}")), TOPICS
    ).process(records)
    confidences = sorted({e.confidence for e in unreviewed.events})
    threshold = confidences[len(confidences) // 2]
    rules = parse_rules(
        f"default_queue: t\nreview: {{queue: people, min_confidence: {threshold!r}}}\n"
        f"categories: {CATEGORIES}"
    )
    metrics = StreamMetrics()
    processor = BatchProcessor.single(lambda: models, Router(rules), TOPICS, metrics=metrics)
    records.append(InboundRecord(TOPICS.article, 0, 99, None, b"[]", NOW, NOW))

    result = processor.process(records)

    events = result.events
    assert len(events) == 40
    reviewed = sum(sent_to_review(e) for e in events)
    assert 0 < reviewed < 40 and reviewed == sum(e.route == "people" for e in events)
    assert _value(metrics, "textroute_routed_by_pipeline_total", pipeline="default") == 40
    assert _value(metrics, "textroute_review_total", pipeline="default") == reviewed
    assert _value(metrics, "textroute_prediction_confidence_count", pipeline="default") == 40
    assert _value(
        metrics, "textroute_prediction_confidence_sum", pipeline="default"
    ) == pytest.approx(sum(e.confidence for e in events))
    assert _value(
        metrics, "textroute_prediction_confidence_bucket", pipeline="default", le="0.5"
    ) == sum(e.confidence <= 0.5 for e in events)
    labels = _samples(metrics, "textroute_predicted_labels_total")
    assert labels == {
        ("default", label): float(sum(e.category == label for e in events))
        for label in {e.category for e in events}
    }


def _manifest(**metrics: Any) -> ModelManifest:
    return ModelManifest(
        name="m",
        version="1",
        task=TaskKind.CLASSIFICATION,
        labels=LABELS,
        base_model="none",
        max_length=8,
        metrics=metrics,
    )


def test_the_training_label_share_comes_from_the_manifest() -> None:
    per_class = {
        "World": {"precision": 0.9, "support": 30.0},
        "Sports": {"precision": 0.8, "support": 10.0},
        "Business": {"precision": 0.0, "support": 0.0},  # no data: left out
        "macro avg": {"support": 40.0},  # not a label of the model
    }
    assert training_label_share(_manifest(test={"per_class": per_class})) == {
        "World": 0.75,
        "Sports": 0.25,
    }
    # Validation when the test split has no per-class table; multi-label reports say per_label.
    assert training_label_share(
        _manifest(test={"accuracy": 0.9}, validation={"per_label": {"Sci/Tech": {"support": 4}}})
    ) == {"Sci/Tech": 1.0}
    # The training data's own distribution wins over any evaluation split.
    assert training_label_share(
        _manifest(
            train_label_distribution={"World": 2, "Sports": 6, "Other": 100},
            test={"per_class": per_class},
        )
    ) == {"World": 0.25, "Sports": 0.75}
    assert training_label_share(_manifest()) == {}


def test_the_share_gauge_is_set_at_load_and_replaced_at_reload(
    tmp_path: Path, tiny_classifier_artifact: Path
) -> None:
    topics = tmp_path / "topics"
    shutil.copytree(tiny_classifier_artifact, topics)
    manifest = read_manifest(topics, verify=False)

    def write(version: str, per_class: dict[str, float]) -> None:
        table = {label: {"support": n} for label, n in per_class.items()}
        updated = manifest.model_copy(
            update={"version": version, "metrics": {"validation": {"per_class": table}}}
        )
        (topics / MANIFEST_FILE).write_text(updated.model_dump_json(), encoding="utf-8")

    write("v1", {"World": 1, "Sports": 3})
    text = f"""
models: {{topics: {topics}}}
pipelines:
  ticket: {{classifier: topics, rules: {{default_queue: t, categories: {CATEGORIES}}}}}
"""
    metrics = StreamMetrics()
    pipelines = build_pipelines(
        parse_pipelines(text, source="p", base_dir=tmp_path), load_predictor, metrics=metrics
    )
    share = "textroute_training_label_share"
    assert _samples(metrics, share) == {("ticket", "World"): 0.25, ("ticket", "Sports"): 0.75}

    write("v2", {"Business": 1})
    assert pipelines.check_for_update() == ["ticket/classifier"]
    assert _samples(metrics, share) == {("ticket", "Business"): 1.0}

    # A version the rules refuse is not used, so the shares stay those of the model in use.
    bad = manifest.model_copy(update={"version": "v3", "labels": ["World", "Other"]})
    (topics / MANIFEST_FILE).write_text(bad.model_dump_json(), encoding="utf-8")
    assert pipelines.check_for_update() == []
    assert _samples(metrics, share) == {("ticket", "Business"): 1.0}


def test_the_metrics_count_each_loaded_onnx_graph_once(tiny_classifier_artifact: Path) -> None:
    metrics = StreamMetrics()
    first = load_predictor(tiny_classifier_artifact)
    before = metrics.registry.get_sample_value("textroute_onnx_graphs_loaded")
    second = load_predictor(tiny_classifier_artifact)  # another pipeline with the same model
    assert before is not None and before >= 1
    assert metrics.registry.get_sample_value("textroute_onnx_graphs_loaded") == before
    assert first.backend is not second.backend
