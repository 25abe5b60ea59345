"""SQuAD mechanics: windowed features, answer post-processing and the official EM/F1 metric."""

from __future__ import annotations

import collections
import re
import string
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from inference import AnswerWindow, DecodedAnswer, decode_answers
from training.errors import DataError

CONTEXT = 1  # sequence id of the context in [CLS] question [SEP] context [SEP]
FloatArray = npt.NDArray[np.float32]


def tokenize_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    max_length: int,
    stride: int,
) -> Any:
    """[CLS] question [SEP] context-window [SEP] features; long contexts become several
    windows overlapping by `stride` tokens, each mapped back to its example."""
    try:
        return tokenizer(
            list(questions),
            list(contexts),
            truncation="only_second",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
    except Exception as exc:  # fast tokenizers raise a plain Exception for these
        raise DataError(
            f"cannot fit a question and a context window in {max_length} tokens ({exc}); "
            "a question is too long: shorten it, or raise --max-length / lower --stride"
        ) from exc


def window_stride(max_length: int, stride: int) -> int:
    """Context overlap between windows, kept well below the window so windows advance."""
    return max(0, min(stride, max_length // 3))


def answer_positions(enc: Any, window: int, answer: tuple[str, int] | None) -> tuple[int, int]:
    """Token start/end of the answer inside this window, or (0, 0) ([CLS]) when the question
    is unanswerable or the answer is not wholly inside the window."""
    if answer is None:
        return 0, 0
    text, start_char = answer
    end_char = start_char + len(text)
    sequence_ids = enc.sequence_ids(window)
    offsets = enc["offset_mapping"][window]
    context = [i for i, s in enumerate(sequence_ids) if s == CONTEXT]
    first, last = context[0], context[-1]
    if offsets[first][0] > start_char or offsets[last][1] < end_char:
        return 0, 0
    start = first
    while start <= last and offsets[start][0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end][1] >= end_char:
        end -= 1
    return start - 1, end + 1


def best_answers(
    start_logits: Sequence[FloatArray],
    end_logits: Sequence[FloatArray],
    enc: Any,
    contexts: Sequence[str],
    *,
    max_answer_length: int = 30,
    null_threshold: float | None = None,
) -> list[DecodedAnswer]:
    """The best span per example over all its windows, decoded as the served model decodes
    (`inference.decode_answers`: spans of the context only, start <= end, at most
    `max_answer_length` tokens; with `null_threshold` (SQuAD v2), empty when [CLS] beats the
    best span by more than the threshold)."""
    windows = (
        AnswerWindow(
            item=example,
            start_logits=start_logits[window],
            end_logits=end_logits[window],
            in_context=[s == CONTEXT for s in enc.sequence_ids(window)],
            offsets=enc["offset_mapping"][window],
        )
        for window, example in enumerate(enc["overflow_to_sample_mapping"])
    )
    answers = decode_answers(
        windows,
        dict(enumerate(contexts)),
        max_answer_length=max_answer_length,
        null_threshold=null_threshold,
    )
    return [answers[example] for example in range(len(contexts))]


# --- The official SQuAD v1.1/v2.0 evaluation (normalisation, exact match, token F1). ---


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, the articles a/an/the and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(truth))


def token_f1(prediction: str, truth: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(truth).split()
    if not pred_tokens or not truth_tokens:
        # SQuAD v2: an empty answer is right only when the truth is empty too.
        return float(pred_tokens == truth_tokens)
    common = collections.Counter(pred_tokens) & collections.Counter(truth_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions: Sequence[str], truths: Sequence[Sequence[str]]) -> dict[str, float]:
    """Exact match and F1 in percent, each the max over an example's gold answers (an
    unanswerable example's only gold answer is ''), with HasAns/NoAns parts when both occur."""
    em = [
        max(exact_match(p, t) for t in (ts or [""]))
        for p, ts in zip(predictions, truths, strict=True)
    ]
    f1 = [
        max(token_f1(p, t) for t in (ts or [""])) for p, ts in zip(predictions, truths, strict=True)
    ]
    scores = {
        "exact_match": 100.0 * float(np.mean(em)) if em else 0.0,
        "f1": 100.0 * float(np.mean(f1)) if f1 else 0.0,
        "total": float(len(em)),
    }
    has = [i for i, ts in enumerate(truths) if ts]
    no = [i for i, ts in enumerate(truths) if not ts]
    if has and no:
        for name, idx in (("HasAns", has), ("NoAns", no)):
            scores[f"{name}_exact_match"] = 100.0 * float(np.mean([em[i] for i in idx]))
            scores[f"{name}_f1"] = 100.0 * float(np.mean([f1[i] for i in idx]))
            scores[f"{name}_total"] = float(len(idx))
    return scores
