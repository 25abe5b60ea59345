"""Shadow candidates: run beside the active classifier on the same texts, never routed by."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pytest

from inference import ItemError, Predictor, load_predictor
from schemas.artifact import read_manifest
from schemas.entities import Classification, LabelScore
from schemas.feedback import ShadowEvent
from schemas.manifest import MANIFEST_FILE, ModelManifest, TaskKind
from schemas.messages import MessageKind
from stream.config import BrokerSettings, TopicSettings, WorkerSettings
from stream.errors import ModelSlotError, PipelineConfigError
from stream.metrics import StreamMetrics
from stream.model_set import ModelSet
from stream.pipeline_config import check_models, load_pipelines, parse_pipelines
from stream.pipelines import DEFAULT_PIPELINE, Pipeline, Pipelines, build_pipelines
from stream.processor import BatchProcessor, BatchResult, InboundRecord
from stream.routing import Router, parse_rules
from stream.samples import sample_records
from tests.stream.conftest import TINY_RULES

TOPICS = TopicSettings()
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
LABELS = ["World", "Sports", "Business", "Sci/Tech"]
CATEGORIES = "{World: q.world, Sports: q.sports, Business: q.business, Sci/Tech: q.tech}"


class Rotated:
    """The real tiny classifier with every label moved to the next one, confident: a candidate
    that disagrees with the active model on every text (and would route elsewhere)."""

    def __init__(self, inner: Predictor) -> None:
        self.inner = inner
        self.calls: list[int] = []

    @property
    def manifest(self) -> ModelManifest:
        return self.inner.manifest.model_copy(update={"name": "rotated"})

    @property
    def backend_name(self) -> str:
        return self.inner.backend_name

    def classify(self, texts: Sequence[object]) -> list[object]:
        self.calls.append(len(texts))
        out: list[object] = []
        for c in self.inner.classify(texts):
            if not isinstance(c, Classification):
                out.append(c)
                continue
            label = LABELS[(LABELS.index(c.label) + 1) % len(LABELS)]
            out.append(
                Classification(label=label, score=0.99, top_k=[LabelScore(label=label, score=0.99)])
            )
        return out


class Exploding(Rotated):
    """A candidate whose every call raises (a broken session, out of memory)."""

    def classify(self, texts: Sequence[object]) -> list[object]:
        self.calls.append(len(texts))
        raise RuntimeError("candidate session is gone")


class Refusing(Rotated):
    """A candidate that answers every text with an item error."""

    def classify(self, texts: Sequence[object]) -> list[object]:
        self.calls.append(len(texts))
        return [
            ItemError(index=i, reason="inference_error", message="no") for i in range(len(texts))
        ]


class Unavailable:
    """A shadow slot whose model set cannot even be read."""

    def __call__(self) -> ModelSet:
        raise OSError("the candidate's directory went away")


@pytest.fixture(scope="module")
def classifier(tiny_classifier_artifact: Path) -> Predictor:
    return load_predictor(tiny_classifier_artifact)


@pytest.fixture(scope="module")
def ner(tiny_ner_artifact: Path) -> Predictor:
    return load_predictor(tiny_ner_artifact)


def _records(n: int = 24) -> list[InboundRecord]:
    """Sample messages of every kind plus a malformed one (a dead letter)."""
    records = [
        InboundRecord(
            topic=TOPICS.topic_for(r.kind),
            partition=0,
            offset=i,
            key=r.key.encode(),
            value=r.value,
            timestamp=NOW,
            received_at=NOW,
        )
        for i, r in enumerate(sample_records(n, seed=5))
    ]
    records.append(
        InboundRecord(TOPICS.article, 0, n, b"bad", b'{"id": "bad"', NOW, NOW),
    )
    return records


def _processor(
    classifier: object,
    ner: object | None,
    shadow: object | None,
    *,
    metrics: StreamMetrics | None = None,
    archive: bool = False,
) -> BatchProcessor:
    models = ModelSet(classifier, ner)  # type: ignore[arg-type]
    candidate = None
    if shadow is not None:
        candidate_set = ModelSet(shadow)  # type: ignore[arg-type]
        candidate = shadow if isinstance(shadow, Unavailable) else (lambda: candidate_set)
    pipeline = Pipeline(
        DEFAULT_PIPELINE,
        tuple(MessageKind),
        lambda: models,
        Router(parse_rules(TINY_RULES)),
        shadow=candidate,  # type: ignore[arg-type]
    )
    return BatchProcessor(
        Pipelines([pipeline]), TOPICS, clock=lambda: NOW, metrics=metrics, archive=archive
    )


def _routed(result: BatchResult) -> list[bytes]:
    return [r.value for r in result.outbound(TOPICS) if r.topic == TOPICS.routed]


def _sample(metrics: StreamMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_events_with_a_disagreeing_shadow_are_byte_identical_to_those_without(
    classifier: Predictor, ner: Predictor
) -> None:
    records = _records()
    plain = _processor(classifier, ner, None).process(records)
    metrics = StreamMetrics()
    rotated = Rotated(classifier)
    shadowed = _processor(classifier, ner, rotated, metrics=metrics).process(records)

    # Every byte of every output the routing consumers read is the same: the candidate,
    # which disagrees on every message, reached no event.
    assert _routed(shadowed) == _routed(plain)
    assert [o.value for o in shadowed.outputs] == [o.value for o in plain.outputs]
    assert len(plain.events) == len(records) - 1 and len(plain.dead_letters) == 1
    # One shadow pair per routed message, keyed by its id, right after its event.
    pairs = shadowed.shadows
    assert [p.message_id for p in pairs] == [e.message_id for e in shadowed.events]
    assert rotated.calls == [len(plain.events)], "one call over every routed text"
    for pair, event in zip(pairs, shadowed.events, strict=True):
        assert pair.active.category == event.category
        assert pair.active.model == event.classifier
        assert pair.candidate.category != event.category and pair.agree is False
        assert pair.candidate.model.name == "rotated"
        assert pair.routed_at == event.routed_at and pair.pipeline == event.pipeline
    out = shadowed.outbound(TOPICS)
    for i, record in enumerate(out):
        if record.topic == TOPICS.shadow:
            assert out[i - 1].topic == TOPICS.routed and out[i - 1].key == record.key
            assert ShadowEvent.model_validate_json(record.value).message_id == record.key.decode()
    assert _sample(
        metrics, "textroute_shadow_predictions_total", pipeline="default", agree="false"
    ) == len(pairs)
    assert _sample(metrics, "textroute_shadow_failures_total", pipeline="default") == 0


def test_the_active_model_as_its_own_shadow_agrees_on_every_message(
    classifier: Predictor,
) -> None:
    metrics = StreamMetrics()
    result = _processor(classifier, None, classifier, metrics=metrics).process(_records(8))
    assert len(result.shadows) == len(result.events) == 8
    assert all(p.agree and p.candidate == p.active for p in result.shadows)
    assert (
        _sample(metrics, "textroute_shadow_predictions_total", pipeline="default", agree="true")
        == 8
    )


@pytest.mark.parametrize("broken", [Exploding, Refusing, "unavailable"])
def test_a_failing_shadow_leaves_every_output_as_without_it_and_is_counted(
    classifier: Predictor, ner: Predictor, broken: type[Rotated] | str
) -> None:
    records = _records()
    plain = _processor(classifier, ner, None).process(records)
    metrics = StreamMetrics()
    candidate = Unavailable() if broken == "unavailable" else broken(classifier)  # type: ignore[operator]
    failing = _processor(classifier, ner, candidate, metrics=metrics).process(records)

    assert [o.value for o in failing.outputs] == [o.value for o in plain.outputs]
    assert failing.outbound(TOPICS) == plain.outbound(TOPICS)
    assert failing.shadows == []
    assert _sample(metrics, "textroute_shadow_failures_total", pipeline="default") == len(
        plain.events
    )
    assert (
        _sample(metrics, "textroute_shadow_predictions_total", pipeline="default", agree="true")
        == 0
    )


class Verbose(Rotated):
    """A candidate whose answers carry hundreds of labels: its shadow pairs are huge."""

    def classify(self, texts: Sequence[object]) -> list[object]:
        many = [LabelScore(label=f"label-{i:04d}-" + "x" * 40, score=0.5) for i in range(300)]
        return [Classification(label="World", score=0.5, labels=many) for _ in texts]


def test_a_shadow_record_over_the_output_limit_is_dropped_and_counted(
    classifier: Predictor,
) -> None:
    from stream.processor import Limits

    records = _records(6)
    plain = _processor(classifier, None, None).process(records)
    biggest = max(len(o.key) + len(o.value) for o in plain.outputs)
    metrics = StreamMetrics()
    models = ModelSet(classifier)  # type: ignore[arg-type]
    verbose = ModelSet(Verbose(classifier))  # type: ignore[arg-type]
    pipeline = Pipeline(
        DEFAULT_PIPELINE,
        tuple(MessageKind),
        lambda: models,
        Router(parse_rules(TINY_RULES)),
        shadow=lambda: verbose,
    )
    # Room for every event, not for the candidate's pairs.
    limited = BatchProcessor(
        Pipelines([pipeline]),
        TOPICS,
        Limits(max_output_bytes=biggest),
        clock=lambda: NOW,
        metrics=metrics,
    ).process(records)
    assert [o.value for o in limited.outputs] == [o.value for o in plain.outputs]
    assert limited.shadows == []
    assert _sample(metrics, "textroute_shadow_failures_total", pipeline="default") == 6


class MultiLabel:
    """A stand-in multi-label model answering fixed label sets (text -> labels)."""

    def __init__(self, name: str, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self._manifest = ModelManifest(
            name=name,
            version="1",
            task=TaskKind.MULTI_LABEL,
            labels=LABELS,
            thresholds=[0.5] * len(LABELS),
            base_model="none",
            max_length=8,
        )

    @property
    def manifest(self) -> ModelManifest:
        return self._manifest

    @property
    def backend_name(self) -> str:
        return "stub"

    def classify(self, texts: Sequence[object]) -> list[Classification]:
        out = []
        for text in texts:
            given = self.answers[str(text).rsplit(" ", 1)[-1]]
            scores = [LabelScore(label=label, score=0.9) for label in given]
            out.append(
                Classification(
                    label=given[0] if given else "World",
                    score=0.9 if given else 0.2,
                    top_k=scores,
                    labels=scores,
                )
            )
        return out


def test_multi_label_shadows_agree_on_the_same_label_set_in_any_order() -> None:
    active = MultiLabel("active", {"a": ["Sports", "Business"], "b": ["World"], "c": []})
    candidate = MultiLabel("cand", {"a": ["Business", "Sports"], "b": ["World", "Sports"], "c": []})
    records = [
        InboundRecord(
            TOPICS.article,
            0,
            i,
            None,
            json.dumps({"id": f"m-{word}", "body": f"text {word}", "source": "x"}).encode(),
            NOW,
            NOW,
        )
        for i, word in enumerate("abc")
    ]
    result = _processor(active, None, candidate).process(records)
    assert {p.message_id: p.agree for p in result.shadows} == {
        "m-a": True,
        "m-b": False,
        "m-c": True,
    }
    (a, b, _) = result.shadows
    assert [ls.label for ls in a.active.labels] == ["Sports", "Business"]
    assert [ls.label for ls in b.candidate.labels] == ["World", "Sports"]


# --- the pipelines file and the worker's settings -------------------------------------------


def _candidate(tmp_path: Path, source: Path, name: str = "candidate", **update: object) -> Path:
    """A copy of an artifact under another name (its manifest changed as `update` says)."""
    out = tmp_path / name
    shutil.copytree(source, out)
    manifest = read_manifest(out, verify=False).model_copy(update={"name": name, **update})
    (out / MANIFEST_FILE).write_text(manifest.model_dump_json(), encoding="utf-8")
    return out


def _pipelines_yaml(classifier: Path, ner: Path, candidate: Path, shadow: str) -> str:
    return f"""
models: {{topics: {classifier}, ner: {ner}, candidate: {candidate}}}
pipelines:
  ticket: {{classifier: topics, shadow: {shadow}, rules: {{default_queue: t,
            categories: {CATEGORIES}}}}}
  article: {{classifier: topics, ner: ner, shadow: {shadow},
             rules: {{default_queue: a, categories: {CATEGORIES}}}}}
  email: {{classifier: topics, rules: {{default_queue: e, categories: {CATEGORIES}}}}}
"""


def test_the_pipelines_file_resolves_a_shadow_model(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    candidate = _candidate(tmp_path, tiny_classifier_artifact)
    text = _pipelines_yaml(tiny_classifier_artifact, tiny_ner_artifact, candidate, "candidate")
    resolved = parse_pipelines(text, source="p.yaml", base_dir=tmp_path)
    check_models(resolved)
    assert [(p.name, p.shadow) for p in resolved] == [
        ("ticket", candidate),
        ("article", candidate),
        ("email", None),
    ]


@pytest.mark.parametrize(
    ("shadow", "error"),
    [
        ("nowhere", r"pipelines\.ticket\.shadow names model 'nowhere', which is not under"),
        ("ner", r"^pipelines\.ticket\.shadow: the classifier slot needs"),
        (
            "multi",
            r"^pipelines\.ticket\.shadow: the shadow candidate multi .* is a "
            r"multi-label-classification model, but the classifier it shadows \(tiny-topics\) "
            r"is a classification model",
        ),
    ],
)
def test_a_shadow_that_does_not_fit_is_refused_in_one_line_naming_its_key(
    tmp_path: Path,
    tiny_classifier_artifact: Path,
    tiny_ner_artifact: Path,
    shadow: str,
    error: str,
) -> None:
    multi = _candidate(
        tmp_path,
        tiny_classifier_artifact,
        "multi",
        task=TaskKind.MULTI_LABEL,
        thresholds=[0.5] * 4,
    )
    text = _pipelines_yaml(tiny_classifier_artifact, tiny_ner_artifact, multi, shadow).replace(
        "candidate: ", "multi: "
    )
    path = tmp_path / "pipelines.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineConfigError, match=error) as caught:
        check_models(load_pipelines(path))
    assert "\n" not in str(caught.value)


def test_one_candidate_shadowing_two_pipelines_runs_once_over_both(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    candidate = _candidate(tmp_path, tiny_classifier_artifact)
    loaded: dict[Path, Rotated] = {}

    def loader(artifact_dir: Path) -> object:
        model = load_predictor(artifact_dir)
        if artifact_dir.resolve() != candidate.resolve():
            return model
        assert not loaded, "one candidate named by two pipelines is loaded once"
        loaded[artifact_dir] = Rotated(model)
        return loaded[artifact_dir]

    text = _pipelines_yaml(tiny_classifier_artifact, tiny_ner_artifact, candidate, "candidate")
    metrics = StreamMetrics()
    pipelines = build_pipelines(
        parse_pipelines(text, source="p", base_dir=tmp_path), loader, metrics=metrics
    )
    (rotated,) = loaded.values()
    records = [r for r in _records(30) if r.topic != TOPICS.email or r.offset % 2]
    result = BatchProcessor(pipelines, TOPICS, clock=lambda: NOW, metrics=metrics).process(records)
    shadowed = [e for e in result.events if e.pipeline in ("ticket", "article")]
    assert rotated.calls == [len(shadowed)], "one call over both pipelines' texts"
    assert [p.message_id for p in result.shadows] == [e.message_id for e in shadowed]
    assert {p.pipeline for p in result.shadows} == {"ticket", "article"}
    assert pipelines.versions()["ticket/shadow/classifier"] == "20250101T000000Z"


def test_the_shadow_reloads_live_and_a_bad_version_keeps_the_old_one(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    candidate = _candidate(tmp_path, tiny_classifier_artifact)
    text = _pipelines_yaml(tiny_classifier_artifact, tiny_ner_artifact, candidate, "candidate")
    metrics = StreamMetrics()
    pipelines = build_pipelines(
        parse_pipelines(text, source="p", base_dir=tmp_path), load_predictor, metrics=metrics
    )
    processor = BatchProcessor(pipelines, TOPICS, clock=lambda: NOW, metrics=metrics)
    records = _records(12)
    before = processor.process(records)
    assert {p.candidate.model.version for p in before.shadows} == {"20250101T000000Z"}

    manifest = read_manifest(candidate, verify=False)
    (candidate / MANIFEST_FILE).write_text(
        manifest.model_copy(update={"version": "20250202T000000Z"}).model_dump_json(),
        encoding="utf-8",
    )
    assert pipelines.check_for_update() == ["ticket/shadow/classifier", "article/shadow/classifier"]
    after = processor.process(records)
    assert {p.candidate.model.version for p in after.shadows} == {"20250202T000000Z"}
    assert [o.value for o in after.outputs] == [o.value for o in before.outputs]

    # A new version doing another task is refused; the candidate in use stays.
    (candidate / MANIFEST_FILE).write_text(
        manifest.model_copy(
            update={
                "version": "20250303T000000Z",
                "task": TaskKind.MULTI_LABEL,
                "thresholds": [0.5] * 4,
            }
        ).model_dump_json(),
        encoding="utf-8",
    )
    assert pipelines.check_for_update() == []
    assert pipelines.versions()["ticket/shadow/classifier"] == "20250202T000000Z"
    again = processor.process(records)
    assert [o.value for o in again.outputs] == [o.value for o in before.outputs]
    assert len(again.shadows) == len(before.shadows)
    assert (
        _sample(
            metrics,
            "textroute_model_reloads_total",
            role="ticket/shadow/classifier",
            result="failed",
        )
        == 1
    )


def _worker_settings(tmp_path: Path, classifier: Path, ner: Path, shadow: Path) -> WorkerSettings:
    rules = tmp_path / "rules.yaml"
    rules.write_text(TINY_RULES, encoding="utf-8")
    return WorkerSettings(
        broker=BrokerSettings(bootstrap_servers="127.0.0.1:9", idempotence="off"),
        classifier_dir=classifier,
        ner_dir=ner,
        rules_path=rules,
        shadow_classifier_dir=shadow,
        data_dir=tmp_path / "faust",
        reload_interval_s=0,
    )


def test_the_default_pipeline_takes_its_shadow_from_the_worker_settings(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    from stream.worker import build_worker

    candidate = _candidate(tmp_path, tiny_classifier_artifact)
    settings = _worker_settings(tmp_path, tiny_classifier_artifact, tiny_ner_artifact, candidate)
    built = build_worker(settings, loader=load_predictor)
    try:
        assert built.models.versions()["default/shadow/classifier"] == "20250101T000000Z"
        result = built.processor.process(_records(6))
        assert len(result.shadows) == 6 and len(result.archived) == 6, "archive is on by default"
        assert {p.candidate.model.name for p in result.shadows} == {"candidate"}
    finally:
        built.close()


def test_a_default_shadow_of_the_wrong_task_stops_the_worker_naming_the_setting(
    tmp_path: Path, tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    from stream.worker import build_worker

    settings = _worker_settings(
        tmp_path, tiny_classifier_artifact, tiny_ner_artifact, tiny_ner_artifact
    )
    with pytest.raises(ModelSlotError, match=r"^TEXTROUTE_WORKER_SHADOW_CLASSIFIER_DIR: the "):
        build_worker(settings, loader=load_predictor)
