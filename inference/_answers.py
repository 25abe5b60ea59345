"""Extractive QA decoding: start/end logits of a context's windows -> the answer span, or none."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from schemas import ModelManifest

FloatArray = npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class AnswerWindow:
    """One window of a context as the model read it (`[CLS] question [SEP] window [SEP]`)."""

    #: Which question (and context) the window belongs to.
    item: int
    start_logits: FloatArray
    end_logits: FloatArray
    #: Per token: whether it is a token of the context (answers are spans of these only).
    in_context: Sequence[bool]
    #: Per token: its (start, end) character offsets in the context.
    offsets: Sequence[tuple[int, int]]


@dataclass(frozen=True)
class DecodedAnswer:
    """The answer to one question: a span of its context, or empty text when judged
    unanswerable (offsets 0, score that of the best span, which lost to no answer)."""

    text: str
    start: int
    end: int
    #: P(start) x P(end), each a softmax over the context tokens of the span's window.
    score: float
    #: Start+end logit of the best span minus that of [CLS] (the no-answer score); higher: surer.
    null_margin: float = 0.0


def best_span(
    start_logits: FloatArray,
    end_logits: FloatArray,
    allowed: Sequence[bool] | npt.NDArray[np.bool_],
    max_answer_length: int,
) -> tuple[int, int, float] | None:
    """The (start, end, start + end logit) of the best span with start <= end < start +
    `max_answer_length`, both ends `allowed`; None when no span is. Exact, in O(tokens x
    max_answer_length); among equal scores the shortest, then the first, wins."""
    n = min(len(start_logits), len(end_logits), len(allowed))
    mask = np.asarray(allowed[:n], dtype=bool)
    starts = np.where(mask, np.asarray(start_logits[:n], dtype=np.float64), -np.inf)
    ends = np.where(mask, np.asarray(end_logits[:n], dtype=np.float64), -np.inf)
    best: tuple[int, int, float] | None = None
    for length in range(min(max_answer_length, n)):
        scores = starts[: n - length] + ends[length:]
        s = int(scores.argmax())
        if scores[s] > (best[2] if best is not None else -np.inf):
            best = (s, s + length, float(scores[s]))
    return best


def decode_answers(
    windows: Iterable[AnswerWindow],
    contexts: Mapping[int, str],
    *,
    max_answer_length: int = 30,
    null_threshold: float | None = None,
) -> dict[int, DecodedAnswer]:
    """The answer of every item of `contexts`: the best span over all its windows.

    A span's score is its start plus end logit; the no-answer score is that of [CLS] (token 0;
    the lowest over the windows, as in the reference SQuAD implementation). With
    `null_threshold` set (SQuAD v2 models), the answer is empty when the no-answer score beats
    the best span by more than the threshold; with None (v1.1) a span is always given. An item
    none of whose windows holds a span (or has no window) gets an empty answer.
    """
    best: dict[int, tuple[float, DecodedAnswer]] = {}
    null_scores: dict[int, float] = {}
    for window in windows:
        item = window.item
        n = min(len(window.start_logits), len(window.end_logits), len(window.in_context))
        starts = np.asarray(window.start_logits[:n], dtype=np.float64)
        ends = np.asarray(window.end_logits[:n], dtype=np.float64)
        mask = np.asarray(window.in_context[:n], dtype=bool)
        if n == 0:
            continue
        null_scores[item] = min(float(starts[0] + ends[0]), null_scores.get(item, np.inf))
        found = best_span(starts, ends, mask, max_answer_length)
        if found is None or (item in best and best[item][0] >= found[2]):
            continue
        s, e, score = found
        start_char, end_char = window.offsets[s][0], window.offsets[e][1]
        best[item] = (
            score,
            DecodedAnswer(
                text=contexts[item][start_char:end_char],
                start=start_char,
                end=end_char,
                score=float(_softmax(starts, mask)[s] * _softmax(ends, mask)[e]),
            ),
        )
    answers: dict[int, DecodedAnswer] = {}
    for item in contexts:
        if item not in best:
            answers[item] = DecodedAnswer(text="", start=0, end=0, score=0.0, null_margin=-np.inf)
            continue
        score, span = best[item]
        margin = score - null_scores[item]
        if null_threshold is not None and margin < -null_threshold:
            answers[item] = DecodedAnswer("", 0, 0, span.score, null_margin=margin)
        else:
            answers[item] = DecodedAnswer(
                span.text, span.start, span.end, span.score, null_margin=margin
            )
    return answers


def null_threshold_of(manifest: ModelManifest) -> float | None:
    """The no-answer threshold a QA artifact was evaluated with (set by `textroute train qa` for
    data with unanswerable questions); None: the model always answers."""
    validation = manifest.metrics.get("validation")
    value = validation.get("null_threshold") if isinstance(validation, dict) else None
    return float(value) if isinstance(value, int | float) else None


def _softmax(logits: npt.NDArray[np.float64], mask: npt.NDArray[np.bool_]) -> FloatArray:
    """Softmax over the masked-in entries (zero elsewhere)."""
    masked = np.where(mask, logits, -np.inf)
    shifted = np.exp(masked - masked.max())
    result: FloatArray = shifted / shifted.sum()
    return result
