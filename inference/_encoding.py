"""Tokenization with the `tokenizers` library, long texts by policy, length-bucketed padding."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Encoding, Tokenizer

from inference.settings import LongText

# [CLS] a [SEP] b [SEP]: the most special tokens a BERT-family pair adds.
_MAX_SPECIAL_TOKENS = 3


def head_tail_split(room: int) -> tuple[int, int]:
    """(head, tail) tokens of a head_tail window with `room` tokens for the text: a quarter
    head, the rest tail. Sun et al. 2019 ("How to Fine-Tune BERT for Text Classification?")
    found 128 head + 382 tail tokens the best cut of a 512 window (510 tokens of text) on
    IMDb and Sogou, better than the head or the tail alone: openings state the topic, endings
    the request or verdict. The same quarter keeps 32 + 94 for max_length 128."""
    head = min(room, (room + 2) // 4)
    return head, room - head


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
    """Configured copies of the artifact's tokenizer.json: whole texts truncated to
    max_length, long texts split into max_length windows (one copy per stride asked for),
    whole texts untruncated (cut to head and tail here), pairs. Configured before use, so
    encoding is safe from several threads. The long-text policy is the caller's (`encode`):
    predictors reading one artifact by different policies share one encoder and one graph."""

    def __init__(self, tokenizer_json: Path, max_length: int, *, stride: int) -> None:
        text = tokenizer_json.read_text(encoding="utf-8")
        self._json = text
        self.max_length = max_length
        self._truncating = Tokenizer.from_str(text)
        self._truncating.no_padding()
        self._truncating.enable_truncation(max_length)
        # Chunking tokenizers by (clamped) stride; the default's is made now, others on demand.
        self._chunkers: dict[int, Tokenizer] = {}
        self._chunkers_lock = threading.Lock()
        self._chunking = self._chunker(stride)
        self._whole = Tokenizer.from_str(text)
        self._whole.no_padding()
        self._whole.no_truncation()
        room = max_length - _MAX_SPECIAL_TOKENS
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

    def _chunker(self, stride: int) -> Tokenizer:
        # tokenizers panics unless the stride is below the window's room for real tokens.
        room = self.max_length - _MAX_SPECIAL_TOKENS
        stride = max(0, min(stride, room // 2))
        with self._chunkers_lock:
            tokenizer = self._chunkers.get(stride)
            if tokenizer is None:
                tokenizer = Tokenizer.from_str(self._json)
                tokenizer.no_padding()
                tokenizer.enable_truncation(self.max_length, stride=stride)
                self._chunkers[stride] = tokenizer
            return tokenizer

    def encode(
        self, items: Sequence[tuple[int, str]], long_text: LongText, *, stride: int | None = None
    ) -> Encoded:
        """Rows for single texts, a long one read as `long_text` says: truncate, its first
        max_length tokens; head_tail, one row of its head and tail (`head_tail`); chunks, every
        overlapping window (`windows`, `stride` tokens shared; None: the encoder's own). A text
        that fits max_length is one whole row under every policy."""
        if long_text == "chunks":
            return self.windows(items, stride=stride)
        if long_text == "head_tail":
            return self.head_tail(items)
        return _encode(self._truncating, items, False)

    def windows(self, items: Sequence[tuple[int, str]], *, stride: int | None = None) -> Encoded:
        """Rows for single texts in overlapping windows, for tagging: a token near a window's
        edge is also read, with context on both sides, in its neighbour."""
        chunking = self._chunking if stride is None else self._chunker(stride)
        return _encode(chunking, items, True)

    def head_tail(self, items: Sequence[tuple[int, str]]) -> Encoded:
        """One row per text: a long text's first and last tokens (`head_tail_split`) between
        its special tokens, the middle left out. Every token keeps its offsets and word id in
        the whole text, so spans read off the row index the original text; a word in the
        middle is never read."""
        encoded = _encode(self._whole, items, False)
        return Encoded([self._cut(row) for row in encoded.rows], encoded.failed)

    def _cut(self, row: Row) -> Row:
        n = len(row.ids)
        if n <= self.max_length:
            return row
        # The special tokens ([CLS] ... [SEP]) are the row's edges without a word.
        lead = next((t for t, w in enumerate(row.word_ids) if w is not None), n)
        trail = n - 1 - next((t for t in range(n - 1, -1, -1) if row.word_ids[t] is not None), -1)
        head, tail = head_tail_split(self.max_length - lead - trail)
        keep = slice(0, lead + head), slice(n - trail - tail, n)
        return Row(
            row.item,
            row.ids[keep[0]] + row.ids[keep[1]],
            row.type_ids[keep[0]] + row.type_ids[keep[1]],
            row.offsets[keep[0]] + row.offsets[keep[1]],
            row.word_ids[keep[0]] + row.word_ids[keep[1]],
        )

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
#: Tighter buckets also give the side-by-side threads more, smaller pieces to share out: 1.1
#: ran the int8 classifier 10% and the 3-layer student 4% faster than 1.25 at batch 32, and
#: 1.0 was no faster (`bench/bucket_padding.py`, bench/RESULTS.md "Inference speed").
MAX_PAD_RATIO = 1.1


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
