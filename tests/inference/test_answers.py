"""Extractive QA decoding as served: the best span of the context, or none past the threshold."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference import (
    Answer,
    AnswerWindow,
    InferenceSettings,
    Predictor,
    TextEncoder,
    decode_answers,
    null_threshold_of,
)
from schemas import ModelManifest, TaskKind

QUESTION = "who visited paris ?"
CONTEXT = "john smith visited paris . mary lives in london ."


class PeakedLogits:
    """A QA backend whose logits peak at [CLS] (the no-answer score, 8 + 8) and at the
    context's `word` (the best span, 3 + 3): the no-answer score beats the span by 10."""

    name = "peaked"

    def __init__(self, word_id: int) -> None:
        self.word_id = word_id

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        ids, types = inputs["input_ids"], inputs["token_type_ids"]
        logits = np.zeros(ids.shape, dtype=np.float32)
        logits[:, 0] = 8.0
        logits[(ids == self.word_id) & (types == 1)] = 3.0
        return {"start_logits": logits, "end_logits": logits.copy()}


def served(base: Path, metrics: dict[str, Any]) -> Predictor:
    """A predictor over the peaked backend, for a QA model whose manifest holds `metrics`."""
    from tokenizers import Tokenizer

    paris = Tokenizer.from_file(str(base / "tokenizer.json")).token_to_id("paris")
    encoder = TextEncoder(base / "tokenizer.json", 64, stride=8)
    manifest = ModelManifest(
        name="qa",
        version="1",
        task=TaskKind.QUESTION_ANSWERING,
        labels=[],
        base_model=str(base),
        max_length=64,
        metrics=metrics,
    )
    return Predictor(manifest, PeakedLogits(paris), encoder, InferenceSettings())


def test_served_model_answers_nothing_when_no_answer_beats_the_span_past_its_threshold(
    tiny_base_model: Path,
) -> None:
    # The margin is 10: a SQuAD v2 model with threshold 5 answers nothing...
    answer = served(tiny_base_model, {"validation": {"null_threshold": 5.0}}).answer(
        QUESTION, CONTEXT
    )
    assert isinstance(answer, Answer)
    assert (answer.text, answer.start, answer.end) == ("", 0, 0)
    # ...one with a threshold above the margin, or a v1.1 model (none), gives the span.
    for metrics in ({"validation": {"null_threshold": 12.0}}, {}):
        answer = served(tiny_base_model, metrics).answer(QUESTION, CONTEXT)
        assert isinstance(answer, Answer) and answer.text == "paris"
        assert CONTEXT[answer.start : answer.end] == "paris"


def test_null_threshold_is_the_one_the_model_was_evaluated_with() -> None:
    manifest = ModelManifest(
        name="qa",
        version="1",
        task=TaskKind.QUESTION_ANSWERING,
        labels=[],
        base_model="b",
        max_length=64,
        metrics={"validation": {"null_threshold": 0.0}},
    )
    assert null_threshold_of(manifest) == 0.0
    assert null_threshold_of(manifest.model_copy(update={"metrics": {}})) is None


def window(item: int, starts: list[float], ends: list[float], context: list[bool]) -> AnswerWindow:
    return AnswerWindow(
        item=item,
        start_logits=np.asarray(starts),
        end_logits=np.asarray(ends),
        in_context=context,
        offsets=[(i, i + 1) for i in range(len(starts))],
    )


def test_decoder_takes_the_best_span_of_any_window_and_the_lowest_null_score() -> None:
    #   tokens: [CLS] q  c  c  c    (context "abcd"; offsets i..i+1 read its letters)
    context = [False, False, True, True, True]
    first = window(0, [1.0, 9.0, 2.0, 0.0, 0.0], [1.0, 9.0, 0.0, 2.0, 0.0], context)
    second = window(0, [5.0, 0.0, 0.0, 0.0, 3.0], [5.0, 0.0, 0.0, 0.0, 3.0], context)
    [(item, answer)] = decode_answers([first, second], {0: "abcde"}).items()
    # The question token (9 + 9) is never an answer; the second window's span (6) beats the
    # first's (4); the no-answer score is the lower [CLS] of the two windows (2).
    assert (item, answer.text, answer.start, answer.end) == (0, "e", 4, 5)
    assert answer.null_margin == pytest.approx(6.0 - 2.0)
    assert 0 < answer.score <= 1


def test_decoder_gives_an_item_without_windows_an_empty_answer() -> None:
    answers = decode_answers([], {3: "some context"})
    assert answers[3].text == "" and answers[3].null_margin == -np.inf
