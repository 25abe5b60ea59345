"""The batch predictor on real tiny artifacts: labels, entities, bad items, backends, chunks."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from inference import (
    Answer,
    InferenceSettings,
    ItemError,
    Predictor,
    WrongTaskError,
    load_predictor,
    with_long_text,
)
from inference import loading as loading_module
from inference.backend import plan_backend
from inference.onnx_backend import OnnxBackend
from schemas import Classification, Entity
from tests.fixtures_artifacts import TOPIC_WORDS

SPORTS = "the team win the game"
BUSINESS = "stock market bank profit"


def _onnx(art: Path, **kw: object) -> Predictor:
    return load_predictor(art, InferenceSettings.model_validate({"backend": "onnx", **kw}))


def _labels(results: list[Classification | ItemError]) -> list[str]:
    return [r.label if isinstance(r, Classification) else r.reason for r in results]


def test_classifier_returns_label_probability_and_top_k(tiny_classifier_artifact: Path) -> None:
    predictor = _onnx(tiny_classifier_artifact, top_k=2)
    (result,) = predictor.classify([SPORTS])
    assert isinstance(result, Classification)
    assert result.label == "Sports"
    assert result.top_k[0].label == "Sports"
    assert len(result.top_k) == 2
    assert result.score == result.top_k[0].score > result.top_k[1].score
    assert predictor.backend_name == "onnx-int8"
    assert predictor.manifest.name == "tiny-topics"


def test_top_k_probabilities_of_all_labels_sum_to_one(tiny_classifier_artifact: Path) -> None:
    (result,) = _onnx(tiny_classifier_artifact, top_k=10).classify([BUSINESS])
    assert isinstance(result, Classification)
    assert len(result.top_k) == 4
    assert sum(s.score for s in result.top_k) == pytest.approx(1.0, abs=1e-5)


def test_bad_items_get_typed_errors_and_the_rest_of_the_batch_its_labels(
    tiny_classifier_artifact: Path,
) -> None:
    predictor = _onnx(tiny_classifier_artifact, max_chars=100)
    batch: list[object] = [SPORTS, "", 42, BUSINESS, "   ", "x" * 101, None, SPORTS]
    results = predictor.classify(batch)
    assert _labels(results) == [
        "Sports",
        "empty_text",
        "not_a_string",
        "Business",
        "empty_text",
        "text_too_long",
        "not_a_string",
        "Sports",
    ]
    errors = [r for r in results if isinstance(r, ItemError)]
    assert [e.index for e in errors] == [1, 2, 4, 5, 6]
    assert "over the limit of 100" in errors[3].message
    alone = predictor.classify([BUSINESS])[0]
    assert isinstance(alone, Classification) and isinstance(results[3], Classification)
    # Dynamic int8 scales activations per batch, so batch-mates move a score slightly.
    assert results[3].score == pytest.approx(alone.score, abs=5e-3)


def test_a_batch_of_only_bad_items_runs_no_model(tiny_classifier_artifact: Path) -> None:
    assert _labels(_onnx(tiny_classifier_artifact).classify(["", 1.5])) == [
        "empty_text",
        "not_a_string",
    ]
    assert _onnx(tiny_classifier_artifact).classify([]) == []


class _FailingOn:
    """Wraps a backend; raises like a runtime error for any batch holding `token_id`."""

    def __init__(self, inner: Predictor, token_id: int) -> None:
        self._inner = inner.backend
        self.name = inner.backend.name
        self.token_id = token_id
        self.calls: list[tuple[int, ...]] = []
        self.threads: set[str] = set()

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        self.calls.append(inputs["input_ids"].shape)
        self.threads.add(threading.current_thread().name)
        if (inputs["input_ids"] == self.token_id).any():
            raise RuntimeError("ORT failed: bad tensor")
        return self._inner(inputs)


def test_a_backend_failure_costs_only_the_item_that_caused_it(
    tiny_classifier_artifact: Path,
) -> None:
    predictor = _onnx(tiny_classifier_artifact)
    poison = predictor._encoder.encode([(0, "nasa")], "truncate").rows[0].ids[1]
    predictor.backend = _FailingOn(predictor, poison)
    results = predictor.classify([SPORTS, "nasa space science", BUSINESS])
    assert _labels(results) == ["Sports", "inference_error", "Business"]
    failed = results[1]
    assert isinstance(failed, ItemError) and "ORT failed" in failed.message


def test_a_lone_failing_item_gets_an_error_instead_of_raising(
    tiny_classifier_artifact: Path,
) -> None:
    predictor = _onnx(tiny_classifier_artifact, concurrency=1)
    poison = predictor._encoder.encode([(0, "nasa")], "truncate").rows[0].ids[1]
    predictor.backend = _FailingOn(predictor, poison)
    assert _labels(predictor.classify(["nasa"])) == ["inference_error"]


def test_short_texts_are_not_padded_to_long_ones(tiny_classifier_artifact: Path) -> None:
    predictor = _onnx(tiny_classifier_artifact, max_batch=2)
    recorder = _FailingOn(predictor, token_id=-1)
    predictor.backend = recorder
    long_text = " ".join(TOPIC_WORDS["Sports"] * 3)
    predictor.classify([long_text, "game", long_text, "cup"])
    widths = sorted(shape[1] for shape in recorder.calls)
    assert widths[0] == 3  # [CLS] word [SEP]: the two short texts share a batch
    assert widths[1] > 20
    assert all(shape[0] == 2 for shape in recorder.calls)


def _varied_texts() -> list[str]:
    words = [w for topic in TOPIC_WORDS.values() for w in topic]
    return [" ".join(words[i % len(words) : i % len(words) + 1 + i % 9]) for i in range(24)]


def test_buckets_side_by_side_give_the_answers_of_one_bucket_at_a_time(
    tiny_classifier_artifact: Path,
) -> None:
    texts = _varied_texts()
    serial = _onnx(tiny_classifier_artifact, max_batch=3, concurrency=1).classify(texts)
    parallel = _onnx(tiny_classifier_artifact, max_batch=3, concurrency=2)
    recorder = _FailingOn(parallel, token_id=-1)
    parallel.backend = recorder
    side_by_side = parallel.classify(texts)

    assert len(recorder.calls) > 2
    assert all(name.startswith("inference-bucket") for name in recorder.threads)
    assert _labels(side_by_side) == _labels(serial)
    for a, b in zip(side_by_side, serial, strict=True):
        assert isinstance(a, Classification) and isinstance(b, Classification)
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_one_session_serves_lone_texts_and_side_by_side_buckets(
    tiny_classifier_artifact: Path,
) -> None:
    predictor = _onnx(tiny_classifier_artifact, max_batch=3, concurrency=2, threads=2)
    assert isinstance(predictor.backend, OnnxBackend)
    assert predictor.backend._session.get_session_options().intra_op_num_threads == 1
    assert not hasattr(predictor, "_solo")
    recorder = _FailingOn(predictor, token_id=-1)
    predictor.backend = recorder
    lone = predictor.classify(["game"])
    predictor.classify(_varied_texts())
    assert len(recorder.calls) > 3
    assert _labels(lone) == _labels(
        _onnx(tiny_classifier_artifact, concurrency=1).classify(["game"])
    )


def test_each_onnx_graph_is_loaded_once_per_process(tiny_classifier_artifact: Path) -> None:
    from inference.onnx_backend import loaded_graphs

    first = _onnx(tiny_classifier_artifact, concurrency=2, threads=2)
    before = loaded_graphs()
    second = _onnx(tiny_classifier_artifact, concurrency=2, threads=2)
    assert isinstance(first.backend, OnnxBackend) and isinstance(second.backend, OnnxBackend)
    assert first.backend._session is second.backend._session
    assert loaded_graphs() == before
    assert _labels(first.classify([SPORTS])) == _labels(second.classify([SPORTS]))


def test_a_failure_in_a_side_by_side_bucket_costs_only_its_item(
    tiny_classifier_artifact: Path,
) -> None:
    predictor = _onnx(tiny_classifier_artifact, max_batch=2, concurrency=2)
    poison = predictor._encoder.encode([(0, "nasa")], "truncate").rows[0].ids[1]
    predictor.backend = _FailingOn(predictor, poison)
    texts = [SPORTS, "nasa space science", BUSINESS, SPORTS, BUSINESS, "game"]
    assert _labels(predictor.classify(texts)) == [
        "Sports",
        "inference_error",
        "Business",
        "Sports",
        "Business",
        "Sports",
    ]


@pytest.mark.parametrize(
    ("threads", "concurrency", "expected"),
    [(4, 2, (2, 2)), (4, 0, (2, 2)), (1, 0, (1, 1)), (2, 1, (1, 2)), (0, 0, (2, 1))],
)
def test_onnx_runs_buckets_side_by_side_on_one_session_each_with_its_share_of_threads(
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
    concurrency: int,
    expected: tuple[int, int],
) -> None:
    monkeypatch.setattr(loading_module.os, "cpu_count", lambda: 2)
    settings = InferenceSettings(backend="onnx", threads=threads, concurrency=concurrency)
    assert loading_module._parallelism(settings, plan_backend(settings)) == expected


def test_torch_runs_one_bucket_at_a_time_with_every_thread() -> None:
    settings = InferenceSettings(backend="torch", precision="fp32", threads=3, concurrency=4)
    plan = plan_backend(settings, cuda=False)
    assert loading_module._parallelism(settings, plan) == (1, 3)


def test_long_text_is_truncated_or_pooled_over_chunks(tiny_classifier_artifact: Path) -> None:
    # The first window is all sports; the many windows after it are all business.
    text = " ".join(["game"] * 70 + ["stock market bank profit"] * 60)
    truncated = _onnx(tiny_classifier_artifact).classify([text])[0]
    pooled = _onnx(tiny_classifier_artifact, long_text="chunks").classify([text])[0]
    assert isinstance(truncated, Classification) and isinstance(pooled, Classification)
    assert truncated.label == "Sports"
    assert pooled.label == "Business"


def test_head_tail_reads_the_end_of_a_long_text_that_truncation_cuts_off(
    tiny_classifier_artifact: Path,
) -> None:
    # Of 62 tokens of text a window, truncate reads 16 fillers and 46 sports words; head_tail
    # the same 16 fillers (its head) and the last 46 words (its tail): all business.
    text = " ".join(["the"] * 16 + ["game"] * 60 + ["stock market bank profit"] * 15)
    truncated = _onnx(tiny_classifier_artifact).classify([text])[0]
    head_tail = _onnx(tiny_classifier_artifact, long_text="head_tail")
    (read,) = head_tail.classify([text])
    assert isinstance(truncated, Classification) and isinstance(read, Classification)
    assert (truncated.label, read.label) == ("Sports", "Business")
    rows = head_tail._encoder.encode([(0, text)], "head_tail").rows
    assert len(rows) == 1 and len(rows[0].ids) == head_tail.manifest.max_length


def test_another_long_text_policy_is_a_twin_on_the_same_graph_or_the_predictor_itself(
    tiny_classifier_artifact: Path,
) -> None:
    base = _onnx(tiny_classifier_artifact)
    assert with_long_text(base, "truncate") is base
    assert with_long_text(base, None, chunk_stride=base.settings.chunk_stride) is base
    twin = with_long_text(base, "chunks", chunk_stride=8)
    assert isinstance(twin, Predictor) and twin is not base
    assert twin.backend is base.backend and twin.manifest is base.manifest
    assert (twin.settings.long_text, twin.settings.chunk_stride) == ("chunks", 8)
    assert (base.settings.long_text, base.settings.chunk_stride) == ("truncate", 32)
    with pytest.raises(ValueError, match="chunk_stride"):
        with_long_text(base, "chunks", chunk_stride=-1)


def test_head_tail_entities_index_the_original_text_and_miss_only_the_cut_middle(
    tiny_ner_artifact: Path,
) -> None:
    middle = " ".join(["the"] * 60) + " mary lives in berlin " + " ".join(["the"] * 60)
    text = f"john smith visited paris {middle} john smith visited paris"
    (found,) = _onnx(tiny_ner_artifact, long_text="head_tail").entities([text])
    assert isinstance(found, list)
    assert [(e.type, e.text) for e in found] == [("PER", "john smith"), ("LOC", "paris")] * 2
    assert all(text[e.start : e.end] == e.text for e in found)
    assert found[0].start == 0 and found[-1].end == len(text), "tail offsets are the text's own"


def test_onnx_int8_onnx_fp32_and_torch_give_the_same_labels(
    tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    texts = [SPORTS, BUSINESS, "police troops election war", "nasa space chip web", "cup"]
    sentences = ["John Smith visited Paris for Google", "mary lives in london at apple"]
    labels = {}
    entities = {}
    for backend, precision in [("onnx", "int8"), ("onnx", "fp32"), ("torch", "fp32")]:
        settings = InferenceSettings.model_validate({"backend": backend, "precision": precision})
        labels[backend + precision] = _labels(
            load_predictor(tiny_classifier_artifact, settings).classify(texts)
        )
        found = load_predictor(tiny_ner_artifact, settings).entities(sentences)
        entities[backend + precision] = [
            [(e.type, e.start, e.end) for e in ents] for ents in found if isinstance(ents, list)
        ]
    assert labels["onnxint8"] == labels["onnxfp32"] == labels["torchfp32"]
    assert labels["onnxint8"][:4] == ["Sports", "Business", "World", "Sci/Tech"]
    assert entities["onnxint8"] == entities["onnxfp32"] == entities["torchfp32"]


def test_entities_are_merged_spans_over_the_original_text(tiny_ner_artifact: Path) -> None:
    text = "  JOHN   Smith visited PARIS for Google."
    (found,) = _onnx(tiny_ner_artifact).entities([text])
    assert isinstance(found, list)
    assert [(e.type, e.text) for e in found] == [
        ("PER", "JOHN   Smith"),
        ("LOC", "PARIS"),
        ("ORG", "Google"),
    ]
    for entity in found:
        assert text[entity.start : entity.end] == entity.text
        assert 0.5 < entity.score <= 1.0


def test_entities_isolate_bad_items(tiny_ner_artifact: Path) -> None:
    results = _onnx(tiny_ner_artifact).entities(["mary lives in berlin", b"bytes", ""])
    assert isinstance(results[0], list)
    assert [e.type for e in results[0] if isinstance(e, Entity)] == ["PER", "LOC"]
    assert [r.reason for r in results[1:] if isinstance(r, ItemError)] == [
        "not_a_string",
        "empty_text",
    ]


def test_entities_past_max_length_are_found_only_in_chunk_mode(tiny_ner_artifact: Path) -> None:
    text = " ".join(["the"] * 100) + " john smith visited paris"
    cut = _onnx(tiny_ner_artifact).entities([text])[0]
    chunked = _onnx(tiny_ner_artifact, long_text="chunks").entities([text])[0]
    assert cut == []
    assert isinstance(chunked, list)
    assert [(e.type, e.text) for e in chunked] == [("PER", "john smith"), ("LOC", "paris")]
    assert all(text[e.start : e.end] == e.text for e in chunked)


def test_asking_a_model_for_another_task_is_an_error(
    tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    with pytest.raises(WrongTaskError, match="token-classification model"):
        _onnx(tiny_ner_artifact).classify([SPORTS])
    with pytest.raises(WrongTaskError, match="classification model"):
        _onnx(tiny_classifier_artifact).entities([SPORTS])


def test_onnx_path_never_imports_torch_or_transformers(tiny_classifier_artifact: Path) -> None:
    code = (
        "import sys\n"
        "from inference import load_predictor, InferenceSettings\n"
        f"p = load_predictor({str(tiny_classifier_artifact)!r},\n"
        "                    InferenceSettings(backend='onnx'))\n"
        f"print(p.classify([{SPORTS!r}])[0].label)\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip().split("\n")[-2:] == ["Sports", "[]"]


@pytest.fixture(scope="module")
def tiny_pair_artifact(tiny_base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pair") / "tiny-pair"
    return _export_untrained(tiny_base_model, out, "pair-classification")


def test_pairs_are_classified_and_bad_pairs_isolated(tiny_pair_artifact: Path) -> None:
    pairs: list[object] = [("the game", "the match"), ("a", ""), "not a pair", ("bank", "oil")]
    by_backend = {}
    for backend in ("onnx", "torch"):
        settings = InferenceSettings.model_validate({"backend": backend, "precision": "fp32"})
        results = load_predictor(tiny_pair_artifact, settings).classify_pairs(pairs)
        assert [type(r).__name__ for r in results] == [
            "Classification",
            "ItemError",
            "ItemError",
            "Classification",
        ]
        by_backend[backend] = [round(r.score, 4) for r in results if isinstance(r, Classification)]
    assert by_backend["onnx"] == by_backend["torch"]


def _export_untrained(base: Path, out: Path, task: str) -> Path:
    """An untrained pair or QA model, exported (gates off: a random head's logits are ties)."""
    import transformers

    from schemas import ModelManifest, TaskKind
    from training.artifact import save_artifact
    from training.export import GateSettings, export_artifact

    kind = TaskKind(task)
    if kind is TaskKind.QUESTION_ANSWERING:
        model = transformers.AutoModelForQuestionAnswering.from_pretrained(base)
        labels = ["start", "end"]
    else:
        model = transformers.AutoModelForSequenceClassification.from_pretrained(base, num_labels=2)
        labels = ["different", "same"]
    manifest = ModelManifest(
        name=f"tiny-{task}",
        version="1",
        task=kind,
        labels=labels,
        base_model=str(base),
        max_length=64,
        text_columns=["first", "second"],
    )
    save_artifact(out, model, transformers.AutoTokenizer.from_pretrained(base), manifest)
    export_artifact(out, gates=GateSettings(enabled=False))
    return out


@pytest.fixture(scope="module")
def tiny_qa_artifact(tiny_base_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("qa") / "tiny-qa"
    return _export_untrained(tiny_base_model, out, "question-answering")


def test_answers_are_spans_of_the_context_and_bad_questions_are_isolated(
    tiny_qa_artifact: Path,
) -> None:
    context = "John Smith visited Paris for Google in the season."
    too_long = " ".join(["who"] * 80) + "?"
    pairs: list[object] = [("who visited paris?", context), (too_long, context), ("", context)]
    spans = {}
    for backend in ("onnx", "torch"):
        settings = InferenceSettings.model_validate({"backend": backend, "precision": "fp32"})
        predictor = load_predictor(tiny_qa_artifact, settings)
        first, refused, empty = predictor.answers(pairs)
        assert isinstance(first, Answer)
        assert first.text and context[first.start : first.end] == first.text
        assert isinstance(refused, ItemError) and refused.reason == "inference_error"
        assert "tokenizer refused" in refused.message
        assert isinstance(empty, ItemError) and empty.reason == "empty_text"
        spans[backend] = (first.start, first.end)
        assert predictor.answer("who visited paris?", context) == first
    assert spans["onnx"] == spans["torch"]
