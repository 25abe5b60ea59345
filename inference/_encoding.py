"""Tokenization with the `tokenizers` library, chunking of long texts, length-bucketed padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

# [CLS] a [SEP] b [SEP]: the most special tokens a BERT-family pair adds.
_MAX_SPECIAL_TOKENS = 3


@dataclass(frozen=True)
class Row:
    """One sequence for the backend: a whole text, or one chunk of a long one."""

    item: int
    ids: list[int]
    type_ids: list[int]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]

    @classmethod
    def of(cls, item: int, enc: Encoding) -> Row:
        return cls(item, enc.ids, enc.type_ids, enc.offsets, enc.word_ids)


class TextEncoder:
    """Two configured copies of the artifact's tokenizer.json: whole texts truncated to
    max_length, and long texts split into max_length windows. Configured once, so encoding
    is safe from several threads."""

    def __init__(self, tokenizer_json: Path, max_length: int, *, stride: int) -> None:
        text = tokenizer_json.read_text(encoding="utf-8")
        self.max_length = max_length
        self._truncating = Tokenizer.from_str(text)
        self._truncating.no_padding()
        self._truncating.enable_truncation(max_length)
        self._chunking = Tokenizer.from_str(text)
        self._chunking.no_padding()
        # tokenizers panics unless the stride is below the window's room for real tokens.
        room = max_length - _MAX_SPECIAL_TOKENS
        self._chunking.enable_truncation(max_length, stride=max(0, min(stride, room // 2)))
        self._pairs = Tokenizer.from_str(text)
        self._pairs.no_padding()
        self._pairs.enable_truncation(max_length, strategy="longest_first")
        # A long context is read in overlapping windows, each with the whole question.
        self._qa_stride = max(0, min(stride, room // 4))
        self._qa = Tokenizer.from_str(text)
        self._qa.no_padding()
        self._qa.enable_truncation(max_length, stride=self._qa_stride, strategy="only_second")
        # tokenizers panics (an uncatchable-by-Exception PanicException) when a long question
        # leaves the context less room than the stride: such pairs go through without overlap.
        self._qa_plain = Tokenizer.from_str(text)
        self._qa_plain.no_padding()
        self._qa_plain.enable_truncation(max_length, strategy="only_second")
        pad = self._truncating.token_to_id("[PAD]")
        if pad is None:
            pad = self._truncating.token_to_id("<pad>")
        self.pad_id = pad if pad is not None else 0

    def texts(self, items: Sequence[tuple[int, str]], *, chunks: bool) -> Encoded:
        """Rows for single texts; with `chunks`, every window of a long text (overlapping)."""
        return _encode(self._chunking if chunks else self._truncating, items, chunks)

    def windows(self, items: Sequence[tuple[int, str]]) -> Encoded:
        """Rows for single texts in overlapping windows, for tagging: a token near a window's
        edge is also read, with context on both sides, in its neighbour."""
        return _encode(self._chunking, items, True)

    def pairs(self, items: Sequence[tuple[int, tuple[str, str]]], *, qa: bool = False) -> Encoded:
        """Rows for text pairs, truncated; for question answering, the question with every
        overlapping window of the context."""
        if not qa:
            return _encode(self._pairs, items, False)
        questions = self._truncating.encode_batch([q for _, (q, _) in items])
        # Room for context tokens per window: max_length less the question and 3 specials.
        fits = [
            self.max_length - _MAX_SPECIAL_TOKENS - (len(q.ids) - 2) > self._qa_stride
            for q in questions
        ]
        strided = _encode(self._qa, [x for x, ok in zip(items, fits, strict=True) if ok], True)
        plain = _encode(
            self._qa_plain, [x for x, ok in zip(items, fits, strict=True) if not ok], False
        )
        return Encoded(strided.rows + plain.rows, {**strided.failed, **plain.failed})


@dataclass(frozen=True)
class Encoded:
    """Rows ready for the backend, and the items the tokenizer refused (item -> reason)."""

    rows: list[Row]
    failed: dict[int, str]


def _encode(
    tokenizer: Tokenizer, items: Sequence[tuple[int, str | tuple[str, str]]], chunks: bool
) -> Encoded:
    inputs = [value for _, value in items]
    try:
        encs: list[Encoding | Exception] = list(tokenizer.encode_batch(inputs))
    except Exception:  # one bad item fails the whole batch: find it by encoding one by one
        encs = []
        for value in inputs:
            try:
                encs.append(tokenizer.encode_batch([value])[0])
            except Exception as exc:  # e.g. a question that leaves no room for the context
                encs.append(exc)
    rows: list[Row] = []
    failed: dict[int, str] = {}
    for (item, _), enc in zip(items, encs, strict=True):
        if isinstance(enc, Exception):
            failed[item] = str(enc)
            continue
        rows.append(Row.of(item, enc))
        if chunks:
            rows.extend(Row.of(item, extra) for extra in enc.overflowing)
    return Encoded(rows, failed)


#: A bucket closes when a row is this much longer than the bucket's shortest row (on CPU).
#: Padding a random batch to its longest text cost more than batching saved (measured: batch
#: 32 of mixed AG News lengths ran slower per text than batch 1, equal lengths ran 1.3x faster).
MAX_PAD_RATIO = 1.25


def length_buckets(
    rows: Sequence[Row],
    max_batch: int,
    max_pad_ratio: float | None = MAX_PAD_RATIO,
    max_tokens: int | None = None,
) -> Iterator[list[int]]:
    """Row indices in batches of similar length, so short texts are not padded to long ones.

    Rows are sorted by length; a batch holds at most `max_batch` rows, at most `max_pad_ratio`
    times its shortest row's length (None: no bound, for a GPU, where one call for the whole
    batch costs less than the padding) and at most `max_tokens` padded tokens (rows x the
    longest row), so a batch of long texts is cut into calls of a bounded working set.
    """
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].ids))
    bucket: list[int] = []
    for index in order:
        length = len(rows[index].ids)
        if bucket and (
            len(bucket) >= max_batch
            or (max_pad_ratio is not None and length > max_pad_ratio * len(rows[bucket[0]].ids))
            or (max_tokens is not None and (len(bucket) + 1) * length > max_tokens)
        ):
            yield bucket
            bucket = []
        bucket.append(index)
    if bucket:
        yield bucket


def pad(rows: Sequence[Row], pad_id: int) -> dict[str, np.ndarray]:
    """input_ids, attention_mask and token_type_ids padded to the longest row of the batch."""
    width = max(len(r.ids) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        n = len(row.ids)
        ids[i, :n] = row.ids
        mask[i, :n] = 1
        types[i, :n] = row.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
