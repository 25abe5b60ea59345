"""The classify-and-tag predictor: class and entities from one backend pass per text."""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import (
    ArtifactUnusableError,
    InferenceSettings,
    ItemError,
    MultiTaskPredictor,
    Predictor,
    load_predictor,
)
from schemas import Classification, Entity

TEXTS = [
    "john smith visited paris for google",
    "the team win the game and the cup",
    "stock market bank profit",
    "mary works in london for apple",
]


def _load(artifact: Path, **settings: object) -> MultiTaskPredictor:
    predictor = load_predictor(
        artifact, InferenceSettings.model_validate({"backend": "onnx", **settings})
    )
    assert isinstance(predictor, MultiTaskPredictor)
    return predictor


def _spans(entities: list[Entity]) -> list[tuple[str, str, int, int]]:
    return [(e.type, e.text, e.start, e.end) for e in entities]


class _CountingBackend:
    """The predictor's backend, counting the batches it runs."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        self.calls += 1
        result: Mapping[str, np.ndarray] = self.inner(inputs)
        return result


def test_classify_and_tag_gives_what_classify_and_entities_give_separately(
    tiny_multitask_artifact: Path,
) -> None:
    predictor = _load(tiny_multitask_artifact, precision="fp32")

    both = predictor.classify_and_tag(TEXTS)
    classes, entities = predictor.classify(TEXTS), predictor.entities(TEXTS)

    pairs = [r for r in both if isinstance(r, tuple)]
    assert len(pairs) == len(TEXTS)
    for (cls, ents), alone_cls, alone_ents in zip(pairs, classes, entities, strict=True):
        assert isinstance(alone_cls, Classification) and isinstance(alone_ents, list)
        assert cls.label == alone_cls.label
        assert cls.score == pytest.approx(alone_cls.score, abs=1e-5)
        assert _spans(ents) == _spans(alone_ents)
    assert [e.type for e in pairs[0][1]] == ["PER", "LOC", "ORG"]
    assert pairs[2][0].label == "Business"


def test_one_backend_pass_serves_both_answers(tiny_multitask_artifact: Path) -> None:
    # One backend to count, and every text in one length bucket.
    predictor = _load(tiny_multitask_artifact, concurrency=1, bucket_pad_ratio=2.0)
    counting = _CountingBackend(predictor.backend)
    predictor.backend = counting
    same_length = ["team win the game", "stock bank profit", "mary visited london"]

    predictor.classify_and_tag(same_length)
    one_pass = counting.calls
    predictor.classify(same_length)
    predictor.entities(same_length)

    assert one_pass == 1
    assert counting.calls == 3 * one_pass


def test_results_match_the_pytorch_model_read_through_each_task_s_columns(
    tiny_multitask_artifact: Path,
) -> None:
    from training.artifact import load_artifact
    from training.evaluation import predict_proba
    from training.tasks import ClassifyAndTagTask
    from training.tasks.token_classification import extract_entities

    model, tokenizer, manifest = load_artifact(tiny_multitask_artifact)
    assert manifest.class_labels is not None
    task = ClassifyAndTagTask(manifest.tag_labels, manifest.class_labels)
    as_classifier, as_tagger = task.heads(model)
    probs = predict_proba(as_classifier, tokenizer, TEXTS, max_length=manifest.max_length)
    expected_entities = extract_entities(
        as_tagger,  # type: ignore[arg-type]
        tokenizer,
        TEXTS,
        max_length=manifest.max_length,
    )

    results = _load(tiny_multitask_artifact, precision="fp32").classify_and_tag(TEXTS)

    for i, result in enumerate(results):
        assert isinstance(result, tuple)
        cls, ents = result
        assert cls.label == manifest.class_labels[int(probs[i].argmax())]
        assert cls.score == pytest.approx(float(probs[i].max()), abs=1e-4)
        assert _spans(ents) == _spans(expected_entities[i])


def test_a_bad_item_gets_its_error_and_the_others_their_answers(
    tiny_multitask_artifact: Path,
) -> None:
    predictor = _load(tiny_multitask_artifact, max_chars=60)
    batch: list[object] = [TEXTS[0], "", 42, "x" * 61, TEXTS[2]]

    results = predictor.classify_and_tag(batch)

    reasons = [r.reason if isinstance(r, ItemError) else "ok" for r in results]
    assert reasons == ["ok", "empty_text", "not_a_string", "text_too_long", "ok"]
    assert [r.index for r in results if isinstance(r, ItemError)] == [1, 2, 3]
    assert isinstance(predictor.entities(batch)[1], ItemError)
    assert isinstance(predictor.classify(batch)[3], ItemError)


def test_a_long_text_is_tagged_in_every_window_and_classed_by_their_mean(
    tiny_multitask_artifact: Path,
) -> None:
    predictor = _load(tiny_multitask_artifact, long_text="chunks", precision="fp32", top_k=10)
    text = " ".join(["john visited paris for google"] * 20)

    (result,) = predictor.classify_and_tag([text])

    assert isinstance(result, tuple)
    cls, ents = result
    assert len(text.split()) > 2 * predictor.manifest.max_length, "several windows"
    # The tiny model may miss an entity here and there; every window must be read.
    assert 50 <= len(ents) <= 60 and {e.text for e in ents} == {"john", "paris", "google"}
    assert ents[0].start == 0 and ents[-1].end > len(text) - 40
    assert all(text[e.start : e.end] == e.text for e in ents)
    assert [s.label for s in cls.top_k] != [] and len(cls.top_k) == 4
    assert sum(s.score for s in cls.top_k) == pytest.approx(1.0, abs=1e-5)


def test_an_entity_only_in_a_later_window_is_kept_with_chunks_and_missed_by_truncate(
    tiny_multitask_artifact: Path,
) -> None:
    text = " ".join(["the"] * 70) + " john visited paris for google"
    chunked = _load(tiny_multitask_artifact, long_text="chunks", precision="fp32")
    stride = chunked.settings.chunk_stride
    windows = chunked._encoder.encode([(0, text)], "chunks", stride=stride).rows
    first_end = max(end for _, end in windows[0].offsets)
    assert len(windows) >= 3 and first_end < text.index("john"), "entities past window 1"

    (cut,) = _load(tiny_multitask_artifact, precision="fp32").classify_and_tag([text])
    (read,) = chunked.classify_and_tag([text])

    assert isinstance(cut, tuple) and isinstance(read, tuple)
    assert cut[1] == []
    assert {e.text for e in read[1]} == {"john", "paris", "google"}
    assert all(text[e.start : e.end] == e.text and e.start > first_end for e in read[1])


def test_head_tail_tags_head_and_tail_with_offsets_into_the_original_text(
    tiny_multitask_artifact: Path,
) -> None:
    sentence = "john visited paris for google"
    text = f"{sentence} {' '.join(['the'] * 70)} mary works in london for apple"
    predictor = _load(tiny_multitask_artifact, long_text="head_tail", precision="fp32")

    (result,) = predictor.classify_and_tag([text])

    assert isinstance(result, tuple)
    found = [(e.text, e.start) for e in result[1]]
    tail = text.index("mary")
    assert ("john", 0) in found and ("london", text.index("london")) in found
    assert all(text[e.start : e.end] == e.text for e in result[1])
    assert all(e.end <= len(sentence) or e.start >= tail for e in result[1])


def test_the_pytorch_backend_gives_the_same_answers_as_onnx_fp32(
    tiny_multitask_artifact: Path,
) -> None:
    torch_predictor = load_predictor(
        tiny_multitask_artifact, InferenceSettings(backend="torch", precision="fp32")
    )
    assert isinstance(torch_predictor, MultiTaskPredictor)
    onnx_results = _load(tiny_multitask_artifact, precision="fp32").classify_and_tag(TEXTS)

    for a, b in zip(torch_predictor.classify_and_tag(TEXTS), onnx_results, strict=True):
        assert isinstance(a, tuple) and isinstance(b, tuple)
        assert a[0].label == b[0].label and _spans(a[1]) == _spans(b[1])


def test_only_its_own_tasks_are_offered(tiny_multitask_artifact: Path) -> None:
    predictor = _load(tiny_multitask_artifact)
    assert not isinstance(predictor, Predictor)
    for refused in ("classify_pairs", "answers", "answer"):
        assert not hasattr(predictor, refused)
    assert callable(predictor.classify) and callable(predictor.entities)


def test_a_manifest_without_class_labels_is_refused_at_load(
    tiny_multitask_artifact: Path, tmp_path: Path
) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_multitask_artifact, art)
    path = art / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["class_labels"] = None
    path.write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(ArtifactUnusableError, match="class_labels"):
        load_predictor(art, InferenceSettings(backend="onnx"))
