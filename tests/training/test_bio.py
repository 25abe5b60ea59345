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
