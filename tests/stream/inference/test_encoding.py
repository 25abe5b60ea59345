"""Length bucketing: batches of similar length, capped in size and in padding."""

from __future__ import annotations

from stream.inference._encoding import Row, length_buckets


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
    buckets = [[len(rows[i].ids) for i in b] for b in length_buckets(rows, max_batch=32)]
    # 25 <= 1.25 * 20 stays; 31 > 25 opens a bucket; 100 gets its own.
    assert buckets == [[20, 21, 24, 25], [31], [100]]


def test_every_row_lands_in_exactly_one_bucket() -> None:
    lengths = [5, 80, 7, 9, 40, 41, 3, 120, 6, 6]
    seen = [i for b in length_buckets(_rows(lengths), max_batch=3) for i in b]
    assert sorted(seen) == list(range(len(lengths)))
