"""BIO helpers: IOB1 repair, label sets, subword label alignment and entity-span merging."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.formats._iob import bio_label_set, split_tag, to_iob2
from training.tasks._bio import IGNORE_INDEX, align_labels, continuation_ids, first_subwords

LABELS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def test_split_tag_rejects_tags_outside_the_bio_scheme() -> None:
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("O") == ("O", "")
    for bad in ("PER", "X-PER", "B-", "b-PER"):
        with pytest.raises(ValueError, match="not a BIO tag"):
            split_tag(bad)


def test_to_iob2_turns_an_entity_opening_with_i_into_b_and_counts_it() -> None:
    tags, changed = to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"])
    assert tags == ["B-PER", "I-PER", "O", "B-LOC", "B-LOC", "B-ORG"]
    assert changed == 3


def test_label_set_has_o_first_and_both_prefixes_of_every_type() -> None:
    assert bio_label_set(["B-PER", "O", "B-LOC", "I-LOC"]) == LABELS


def test_continuation_maps_b_to_i_and_keeps_the_rest() -> None:
    assert continuation_ids(LABELS) == [0, 2, 2, 4, 4]


def test_alignment_labels_first_subword_only_and_ignores_specials() -> None:
    # [CLS] john sm ##ith paris [SEP]: word 1 ("smith") has two subwords.
    word_ids = [None, 0, 1, 1, 2, None]
    offsets = [(0, 0), (0, 4), (0, 2), (2, 5), (0, 5), (0, 0)]
    labels = align_labels(word_ids, offsets, [3, 4, 1])
    assert labels == [IGNORE_INDEX, 3, 4, IGNORE_INDEX, 1, IGNORE_INDEX]


def test_alignment_with_all_subwords_continues_a_b_word_as_i() -> None:
    word_ids = [None, 0, 0, 1, None]
    offsets = [(0, 0), (0, 2), (2, 5), (0, 5), (0, 0)]
    labels = align_labels(word_ids, offsets, [3, 1], continuation=continuation_ids(LABELS))
    assert labels == [IGNORE_INDEX, 3, 4, 1, IGNORE_INDEX]


def test_a_window_opening_mid_word_does_not_relabel_that_word() -> None:
    # An overflow window starting with the tail (offset 2..5) of word 4, then word 5.
    word_ids = [None, 4, 5, None]
    offsets = [(0, 0), (2, 5), (0, 3), (0, 0)]
    assert first_subwords(word_ids, offsets) == {5: 2}
    labels = align_labels(word_ids, offsets, [0, 0, 0, 0, 3, 1])
    assert labels == [IGNORE_INDEX, IGNORE_INDEX, 1, IGNORE_INDEX]


def test_alignment_on_real_tokenizer_windows_labels_every_word_once(tiny_base_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    words = ["john", "smithing", "visited", "paris"] * 6
    tags = [3, 4, 0, 1] * 6
    enc = tokenizer(
        [words],
        is_split_into_words=True,
        truncation=True,
        max_length=12,
        stride=3,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    assert len(enc["input_ids"]) > 1, "the sentence should need several windows"
    labelled: dict[int, int] = {}
    for window in range(len(enc["input_ids"])):
        word_ids = enc.word_ids(window)
        labels = align_labels(word_ids, enc["offset_mapping"][window], tags)
        for position, label in enumerate(labels):
            if label != IGNORE_INDEX:
                word = word_ids[position]
                assert word is not None and label == tags[word]
                labelled[word] = label
    assert sorted(labelled) == list(range(len(words)))


VITERBI_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def test_viterbi_keeps_a_valid_argmax_sequence() -> None:
    import numpy as np

    from training.tasks._bio import bio_viterbi

    probs = np.array(
        [[0.1, 0.8, 0.05, 0.03, 0.02], [0.1, 0.05, 0.8, 0.03, 0.02], [0.9, 0, 0, 0, 0.1]]
    )
    assert bio_viterbi(probs, VITERBI_LABELS) == [1, 2, 0]


def test_viterbi_turns_an_i_tag_after_o_into_the_best_valid_reading() -> None:
    import numpy as np

    from training.tasks._bio import bio_viterbi

    # Word by word: O, I-ORG, I-ORG (an entity with no beginning); B-ORG is the runner-up.
    probs = np.array(
        [[0.9, 0.05, 0.02, 0.02, 0.01], [0.3, 0.05, 0.05, 0.2, 0.4], [0.2, 0.05, 0.05, 0.1, 0.6]]
    )
    assert probs.argmax(axis=1).tolist() == [0, 4, 4]
    assert bio_viterbi(probs, VITERBI_LABELS) == [0, 3, 4]


def test_viterbi_never_continues_an_entity_with_another_type_or_opens_with_i() -> None:
    import numpy as np

    from training.tasks._bio import bio_transitions, bio_viterbi

    start, allowed = bio_transitions(VITERBI_LABELS)
    assert start.tolist() == [True, True, False, True, False]
    assert not allowed[1, 4] and allowed[1, 2] and allowed[2, 2] and not allowed[0, 2]
    # I-PER is the argmax of the first word and I-ORG of the second, after B-PER.
    probs = np.array([[0.1, 0.3, 0.6, 0.0, 0.0], [0.1, 0.0, 0.35, 0.0, 0.55]])
    tags = bio_viterbi(probs, VITERBI_LABELS)
    assert tags[0] in (0, 1, 3) and not (tags[0] == 1 and tags[1] == 4)
    assert bio_viterbi(np.zeros((0, 5)), VITERBI_LABELS) == []
