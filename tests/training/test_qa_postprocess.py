"""SQuAD mechanics on hand-made cases: answer token positions, span choice, official EM/F1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from training.tasks._squad import (
    answer_positions,
    best_answers,
    exact_match,
    normalize_answer,
    squad_scores,
    token_f1,
    tokenize_windows,
)

QUESTION = "who visited paris ?"
CONTEXT = "john smith visited paris . mary lives in london ."


@pytest.fixture(scope="module")
def tokenizer(tiny_base_model: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_base_model)


def token_of(enc: Any, window: int, char: int) -> int:
    """The context token of `window` that starts at character `char`."""
    for i, (seq, (start, _)) in enumerate(
        zip(enc.sequence_ids(window), enc["offset_mapping"][window], strict=True)
    ):
        if seq == 1 and start == char:
            return i
    raise AssertionError(f"no context token starts at {char}")


def logits_with(n: int, peaks: dict[int, float]) -> np.ndarray:
    row = np.zeros(n, dtype=np.float32)
    for i, v in peaks.items():
        row[i] = v
    return row


def test_answer_positions_point_at_the_answer_tokens(tokenizer: Any) -> None:
    enc = tokenize_windows(tokenizer, [QUESTION], [CONTEXT], max_length=64, stride=8)
    start, end = answer_positions(enc, 0, ("mary", CONTEXT.index("mary")))
    offsets = enc["offset_mapping"][0]
    assert CONTEXT[offsets[start][0] : offsets[end][1]] == "mary"
    start, end = answer_positions(enc, 0, ("john smith", 0))
    assert CONTEXT[offsets[start][0] : offsets[end][1]] == "john smith"


def test_answer_outside_the_window_or_missing_points_at_cls(tokenizer: Any) -> None:
    long_context = " ".join(["john visited paris ."] * 8) + " mary"
    enc = tokenize_windows(tokenizer, [QUESTION], [long_context], max_length=24, stride=4)
    assert len(enc["input_ids"]) > 1
    answer = ("mary", long_context.rindex("mary"))
    assert answer_positions(enc, 0, answer) == (0, 0)
    last = len(enc["input_ids"]) - 1
    start, end = answer_positions(enc, last, answer)
    assert (start, end) != (0, 0) and start == end
    assert answer_positions(enc, 0, None) == (0, 0)


def test_best_span_keeps_start_before_end(tokenizer: Any) -> None:
    enc = tokenize_windows(tokenizer, [QUESTION], [CONTEXT], max_length=64, stride=8)
    n = len(enc["input_ids"][0])
    mary, london = (
        token_of(enc, 0, CONTEXT.index("mary")),
        token_of(enc, 0, CONTEXT.index("london")),
    )
    # The highest end logit sits before the highest start: that pair is invalid.
    starts = logits_with(n, {london: 9.0, mary: 5.0})
    ends = logits_with(n, {mary: 9.0, london: 4.0})
    [answer] = best_answers([starts], [ends], enc, [CONTEXT])
    assert (answer.text, answer.start) == ("mary", CONTEXT.index("mary"))
    assert CONTEXT[answer.start : answer.end] == answer.text


def test_best_span_respects_the_max_answer_length(tokenizer: Any) -> None:
    enc = tokenize_windows(tokenizer, [QUESTION], [CONTEXT], max_length=64, stride=8)
    n = len(enc["input_ids"][0])
    john, london = token_of(enc, 0, 0), token_of(enc, 0, CONTEXT.index("london"))
    starts = logits_with(n, {john: 9.0, london: 1.0})
    ends = logits_with(n, {london: 9.0, john: 2.0})
    [long_answer] = best_answers([starts], [ends], enc, [CONTEXT], max_answer_length=30)
    assert long_answer.text == "john smith visited paris . mary lives in london"
    [short] = best_answers([starts], [ends], enc, [CONTEXT], max_answer_length=3)
    assert short.text in ("john", "london")


def test_spans_in_the_question_are_never_answers(tokenizer: Any) -> None:
    enc = tokenize_windows(tokenizer, [QUESTION], [CONTEXT], max_length=64, stride=8)
    n = len(enc["input_ids"][0])
    in_question = 2  # "visited" of the question: [CLS] who visited ...
    assert enc.sequence_ids(0)[in_question] == 0
    paris = token_of(enc, 0, CONTEXT.index("paris"))
    starts = logits_with(n, {in_question: 20.0, paris: 3.0})
    ends = logits_with(n, {in_question: 20.0, paris: 3.0})
    [answer] = best_answers([starts], [ends], enc, [CONTEXT])
    assert answer.text == "paris"


def test_no_answer_wins_only_with_a_threshold_when_cls_beats_every_span(tokenizer: Any) -> None:
    enc = tokenize_windows(tokenizer, [QUESTION], [CONTEXT], max_length=64, stride=8)
    n = len(enc["input_ids"][0])
    paris = token_of(enc, 0, CONTEXT.index("paris"))
    starts = logits_with(n, {0: 8.0, paris: 3.0})
    ends = logits_with(n, {0: 8.0, paris: 3.0})
    [v1] = best_answers([starts], [ends], enc, [CONTEXT], null_threshold=None)
    assert v1.text == "paris" and v1.null_margin == pytest.approx(-10.0)
    [v2] = best_answers([starts], [ends], enc, [CONTEXT], null_threshold=0.0)
    assert v2.text == ""
    [lenient] = best_answers([starts], [ends], enc, [CONTEXT], null_threshold=12.0)
    assert lenient.text == "paris"


def test_answer_from_a_later_window_maps_back_to_the_original_context(tokenizer: Any) -> None:
    context = " ".join(["john visited paris ."] * 8) + " mary lives in london ."
    enc = tokenize_windows(tokenizer, [QUESTION], [context], max_length=24, stride=4)
    windows = len(enc["input_ids"])
    target = context.rindex("london")
    starts, ends = [], []
    for w in range(windows):
        n = len(enc["input_ids"][w])
        peaks = {}
        if any(s == target for s, _ in enc["offset_mapping"][w]):
            peaks = {token_of(enc, w, target): 6.0}
        starts.append(logits_with(n, peaks))
        ends.append(logits_with(n, peaks))
    [answer] = best_answers(starts, ends, enc, [context])
    assert (answer.text, answer.start, answer.end) == ("london", target, target + 6)


def test_official_normalisation_drops_case_punctuation_and_articles() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("an apple a day") == "apple day"


def test_exact_match_and_f1_on_known_cases() -> None:
    assert exact_match("The cat.", "cat") == 1.0
    assert token_f1("the cat sat", "cat sat on mat") == pytest.approx(2 * 1.0 * 0.5 / 1.5)
    assert token_f1("dog", "cat") == 0.0
    assert token_f1("", "") == 1.0 and token_f1("", "cat") == 0.0


def test_squad_scores_take_the_best_gold_answer_and_split_v2_by_answerability() -> None:
    scores = squad_scores(["paris", "", "the london"], [["Paris", "France"], [], ["big london"]])
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)
    assert scores["HasAns_total"] == 2 and scores["NoAns_exact_match"] == 100.0
