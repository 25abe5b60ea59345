"""Token tags -> entity spans: first sub-token per word, B-/I- merging, original offsets."""

from __future__ import annotations

import numpy as np
import pytest

from inference._encoding import Row
from inference._spans import entity_spans

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def _row(text: str, pieces: list[tuple[str, int]], tags: list[str]) -> tuple[Row, np.ndarray]:
    """A row of [CLS] pieces [SEP] with one-hot-ish probabilities for `tags`."""
    offsets: list[tuple[int, int]] = [(0, 0)]
    word_ids: list[int | None] = [None]
    cursor = 0
    for piece, word in pieces:
        start = text.index(piece, cursor)
        offsets.append((start, start + len(piece)))
        word_ids.append(word)
        cursor = start + len(piece)
    offsets.append((0, 0))
    word_ids.append(None)
    probs = np.full((len(offsets), len(LABELS)), 0.025)
    for t, tag in enumerate(["O", *tags, "O"]):
        probs[t, LABELS.index(tag)] = 0.9
    row = Row(0, list(range(len(offsets))), [0] * len(offsets), offsets, word_ids)
    return row, probs


def test_b_and_i_tags_merge_into_one_span_over_the_original_text() -> None:
    text = "Dr.  Mary  Smith flew"
    row, probs = _row(
        text,
        [("Dr", 0), (".", 1), ("Mary", 2), ("Smith", 3), ("flew", 4)],
        ["O", "O", "B-PER", "I-PER", "O"],
    )
    (entity,) = entity_spans(text, [row], [probs], LABELS)
    assert (entity.type, entity.text, entity.start, entity.end) == ("PER", "Mary  Smith", 5, 16)
    assert entity.score == pytest.approx(0.9)


def test_a_word_takes_the_tag_of_its_first_sub_token_and_its_full_span() -> None:
    text = "Londoners visited"
    row, probs = _row(text, [("London", 0), ("ers", 0), ("visited", 1)], ["B-LOC", "O", "O"])
    (entity,) = entity_spans(text, [row], [probs], LABELS)
    assert (entity.text, entity.start, entity.end) == ("Londoners", 0, 9)


def test_word_by_word_a_new_b_tag_or_a_type_change_starts_a_new_entity() -> None:
    text = "Mary John Paris"
    row, probs = _row(text, [("Mary", 0), ("John", 1), ("Paris", 2)], ["B-PER", "B-PER", "I-LOC"])
    found = entity_spans(text, [row], [probs], LABELS, viterbi=False)
    assert [(e.type, e.text) for e in found] == [("PER", "Mary"), ("PER", "John"), ("LOC", "Paris")]


def test_viterbi_reads_an_i_tag_of_another_type_as_its_best_valid_alternative() -> None:
    text = "Mary Paris visited"
    row, probs = _row(text, [("Mary", 0), ("Paris", 1), ("visited", 2)], ["B-PER", "I-LOC", "O"])
    probs[2, LABELS.index("B-LOC")] = 0.6  # "Paris": I-LOC first (invalid after B-PER), B-LOC next
    found = entity_spans(text, [row], [probs], LABELS)
    assert [(e.type, e.text) for e in found] == [("PER", "Mary"), ("LOC", "Paris")]
    assert found[1].score == pytest.approx(0.6)  # the probability of the tag decoded


def test_words_split_across_windows_are_tagged_once() -> None:
    text = "Mary Smith"
    first, p1 = _row(text, [("Mary", 0)], ["B-PER"])
    second, p2 = _row(text, [("Smith", 1)], ["I-PER"])
    (entity,) = entity_spans(text, [first, second], [p1, p2], LABELS)
    assert entity.text == "Mary Smith"


def test_no_entity_tags_give_no_entities() -> None:
    text = "the cat"
    row, probs = _row(text, [("the", 0), ("cat", 1)], ["O", "O"])
    assert entity_spans(text, [row], [probs], LABELS) == []


def test_a_token_read_in_two_windows_takes_the_window_where_it_is_central() -> None:
    text = "we met Mary Smith today at noon"
    pieces = [("we", 0), ("met", 1), ("Mary", 2), ("Smith", 3), ("today", 4), ("at", 5)]
    # Window 1 ends at "Mary" (no right context) and misreads it; window 2 sees it centrally.
    edge, p1 = _row(text, pieces[:3], ["O", "O", "O"])
    centre, p2 = _row(text, pieces[1:], ["O", "B-PER", "I-PER", "O", "O"])
    (entity,) = entity_spans(text, [edge, centre], [p1, p2], LABELS)
    assert (entity.type, entity.text) == ("PER", "Mary Smith")


def test_an_entity_never_spans_the_unread_middle_of_a_head_tail_row() -> None:
    text = "we met Mary and many more words here Smith today"
    # A head_tail row: "Mary" ends the head, "Smith" starts the tail; words 3-7 were cut.
    row, probs = _row(
        text, [("we", 0), ("met", 1), ("Mary", 2), ("Smith", 8), ("today", 9)],
        ["O", "O", "B-PER", "I-PER", "O"],
    )  # fmt: skip
    found = entity_spans(text, [row], [probs], LABELS)
    assert [(e.type, e.text) for e in found] == [("PER", "Mary"), ("PER", "Smith")]
    assert all(text[e.start : e.end] == e.text for e in found)


@pytest.mark.parametrize("seed", range(20))
def test_a_text_in_one_row_reads_the_same_words_as_the_overlapping_windows_path(seed: int) -> None:
    from inference._spans import _one_row, _overlapping

    rng = np.random.default_rng(seed)
    # [CLS], words of 1-3 sub-tokens (some words cut out, as head_tail does), [SEP].
    word_ids: list[int | None] = [None]
    offsets = [(0, 0)]
    at = 0
    for w in range(int(rng.integers(1, 30))):
        if rng.random() < 0.1:
            at += 6
            continue
        for _piece in range(int(rng.integers(1, 4))):
            word_ids.append(w)
            offsets.append((at, at + 2))
            at += 2
        at += 1
    word_ids.append(None)
    offsets.append((0, 0))
    row = Row(0, list(range(len(word_ids))), [0] * len(word_ids), offsets, word_ids)
    probs = rng.dirichlet([0.5] * len(LABELS), size=len(word_ids))
    fast, general = _one_row(row, probs), _overlapping([row], [probs])
    assert fast is not None
    assert (fast.index, fast.starts, fast.ends) == (general.index, general.starts, general.ends)
    assert np.array_equal(fast.probs, general.probs)
