"""Encoding: length bucketing (batches of similar length, capped in size and padding), the
windows of long question-answering contexts, and the long-text policies of single texts."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import get_args

from inference._encoding import Row, TextEncoder, head_tail_split, length_buckets
from inference.settings import LongText


def _rows(lengths: list[int]) -> list[Row]:
    return [
        Row(item=i, ids=[1] * n, type_ids=[0] * n, offsets=[(0, 0)] * n, word_ids=[None] * n)
        for i, n in enumerate(lengths)
    ]


def test_buckets_sort_by_length_and_respect_max_batch() -> None:
    rows = _rows([10, 10, 10, 10, 10])
    assert [len(b) for b in length_buckets(rows, max_batch=2)] == [2, 2, 1]


def test_a_much_longer_row_starts_a_new_bucket_so_short_rows_are_not_padded_to_it() -> None:
    rows = _rows([100, 20, 21, 24, 25, 31])
    split = length_buckets(rows, max_batch=32, max_pad_ratio=1.25)
    buckets = [[len(rows[i].ids) for i in b] for b in split]
    # 25 <= 1.25 * 20 stays; 31 > 25 opens a bucket; 100 gets its own.
    assert buckets == [[20, 21, 24, 25], [31], [100]]


def test_every_row_lands_in_exactly_one_bucket() -> None:
    lengths = [5, 80, 7, 9, 40, 41, 3, 120, 6, 6]
    seen = [i for b in length_buckets(_rows(lengths), max_batch=3) for i in b]
    assert sorted(seen) == list(range(len(lengths)))


def _encoder(max_length: int, stride: int) -> TextEncoder:
    from training.models import offline_minilm_dir

    return TextEncoder(Path(offline_minilm_dir()) / "tokenizer.json", max_length, stride=stride)


def test_a_long_qa_context_is_read_in_overlapping_windows_each_with_the_question() -> None:
    context = " ".join(f"word{i}" for i in range(60))
    encoded = _encoder(32, stride=8).pairs([(0, ("where is it?", context))], qa=True)
    assert len(encoded.rows) > 2 and not encoded.failed
    for row in encoded.rows:
        question = [t for t, kind in zip(row.ids, row.type_ids, strict=True) if kind == 0]
        assert question == encoded.rows[0].ids[: len(question)]
    spans = [
        [o for o, k in zip(r.offsets, r.type_ids, strict=True) if k == 1][:-1] for r in encoded.rows
    ]
    # Neighbouring windows share context tokens (the stride), so no answer is cut in two.
    assert all(a[-1] in b for a, b in itertools.pairwise(spans))
    assert spans[-1][-1][1] == len(context)


def test_a_question_that_leaves_less_room_than_the_stride_is_encoded_without_overlap() -> None:
    # 24 of 32 tokens go to the question: tokenizers would panic on a stride of 8.
    question = " ".join(["who"] * 22)
    encoded = _encoder(32, stride=8).pairs(
        [(0, (question, "a b c d e f g h i j k l")), (1, ("who?", "a b c"))], qa=True
    )
    assert not encoded.failed
    assert sorted(r.item for r in encoded.rows) == [0, 1]


def test_head_tail_split_is_128_plus_382_of_a_512_window_and_a_quarter_head_at_128() -> None:
    assert head_tail_split(510) == (128, 382)
    assert head_tail_split(126) == (32, 94)
    assert sum(head_tail_split(7)) == 7


def test_head_tail_keeps_the_head_and_tail_tokens_with_offsets_into_the_original_text() -> None:
    encoder = _encoder(32, stride=8)
    text = " ".join(f"w{i}" for i in range(40))  # "w12" is 2 tokens: 80 tokens of text
    whole = encoder._whole.encode(text)
    (row,) = encoder.head_tail([(0, text)]).rows
    head, tail = head_tail_split(30)
    assert len(row.ids) == 32
    assert row.ids == whole.ids[: 1 + head] + whole.ids[-(tail + 1) :]
    assert row.offsets == whole.offsets[: 1 + head] + whole.offsets[-(tail + 1) :]
    assert row.word_ids == whole.word_ids[: 1 + head] + whole.word_ids[-(tail + 1) :]
    # [CLS] and [SEP] stay at the edges; the tail's offsets index the whole text, to its end.
    assert row.word_ids[0] is None and row.word_ids[-1] is None
    assert row.offsets[1][0] == 0 and row.offsets[-2][1] == len(text)
    assert text[slice(*row.offsets[-2])] == "39"
    assert text[slice(*row.offsets[head + 1])] in text[len(text) // 2 :]


def test_a_text_that_fits_is_the_same_row_under_every_long_text_policy() -> None:
    encoder = _encoder(32, stride=8)
    items = [(0, "a short text"), (1, "another one, short too")]
    rows = {policy: encoder.encode(items, policy).rows for policy in get_args(LongText)}
    assert rows["truncate"] == rows["head_tail"] == rows["chunks"]


def test_chunks_overlap_by_the_stride_asked_for_on_one_shared_encoder() -> None:
    encoder = _encoder(32, stride=8)
    text = " ".join(f"w{i}" for i in range(40))

    def shared(stride: int | None) -> int:
        first, second = encoder.encode([(0, text)], "chunks", stride=stride).rows[:2]
        return len(set(first.offsets[1:-1]) & set(second.offsets[1:-1]))

    assert (shared(None), shared(8), shared(0), shared(4)) == (8, 8, 0, 4)
