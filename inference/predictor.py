"""The batch predictor over a backend (inference.loading builds it for an artifact)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import structlog

from inference._answers import AnswerWindow, decode_answers, null_threshold_of
from inference._encoding import Encoded, Row, TextEncoder, length_buckets, pad
from inference._spans import entity_spans
from inference.backend import Backend
from inference.errors import WrongTaskError
from inference.items import INFERENCE_ERROR, Answer, ItemError, check_pair, check_text
from inference.lexical import WeightedExpert
from inference.settings import InferenceSettings
from schemas import Classification, Entity, LabelScore, ModelManifest, TaskKind

log = structlog.get_logger(__name__)

Outputs = dict[str, np.ndarray]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probs: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return probs


class Predictor:
    """Classifies texts or pairs, or tags entities, in batches; a bad item gets an ItemError
    in its place and never costs the rest of the batch its results."""

    def __init__(
        self,
        manifest: ModelManifest,
        backend: Backend,
        encoder: TextEncoder,
        settings: InferenceSettings,
        *,
        concurrency: int = 1,
        solo: Backend | None = None,
        lexical: WeightedExpert | None = None,
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        # Fused with the encoder's class probabilities of single texts (the artifact's expert).
        self._lexical = lexical
        # The same graph with every thread, for a call that is one bucket (a lone text): with
        # buckets side by side, `backend` has only its share of the cores.
        self._solo = solo
        self.backend_name = backend.name
        self.settings = settings
        self._encoder = encoder
        self._pool = (
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="inference-bucket")
            if concurrency > 1
            else None
        )

    def _require(self, *tasks: TaskKind) -> None:
        if self.manifest.task not in tasks:
            wanted = " or ".join(t.value for t in tasks)
            raise WrongTaskError(
                f"model {self.manifest.name} is a {self.manifest.task.value} model, not "
                f"{wanted}; load the matching artifact"
            )

    def _run(
        self, rows: Sequence[Row], outputs: Sequence[str], *, per_token: bool
    ) -> list[Outputs | Exception]:
        """Backend outputs per row, length-bucketed (per-token outputs trimmed to the row's
        tokens); a failing batch is retried row by row so only the row at fault fails. With
        `concurrency` > 1 the buckets run side by side, one backend call per thread."""
        results: list[Outputs | Exception] = [ValueError("not run")] * len(rows)
        buckets = list(length_buckets(rows, self.settings.max_batch))
        backend = self._solo if self._solo is not None and len(buckets) == 1 else self.backend

        def run(bucket: list[int]) -> None:
            try:
                self._run_batch(backend, rows, bucket, outputs, per_token, results)
                return
            except Exception as exc:  # any runtime failure; a lone row owns it
                if len(bucket) == 1:
                    results[bucket[0]] = self._failed(rows[bucket[0]], exc)
                    return
            for index in bucket:
                try:
                    self._run_batch(backend, rows, [index], outputs, per_token, results)
                except Exception as exc:  # this row's own failure
                    results[index] = self._failed(rows[index], exc)

        if self._pool is None or len(buckets) == 1:
            for bucket in buckets:
                run(bucket)
        else:
            # Largest first: threads take the next bucket as they free up, so the last ones
            # to finish are short and neither thread idles long at the end.
            buckets.sort(key=lambda b: -len(b) * len(rows[b[-1]].ids))
            for _ in self._pool.map(run, buckets):
                pass
        return results

    @staticmethod
    def _failed(row: Row, exc: Exception) -> Exception:
        log.warning("inference.row_failed", error=repr(exc), item=row.item)
        return exc

    def _run_batch(
        self,
        backend: Backend,
        rows: Sequence[Row],
        bucket: list[int],
        outputs: Sequence[str],
        per_token: bool,
        results: list[Outputs | Exception],
    ) -> None:
        batch = [rows[i] for i in bucket]
        values = backend(pad(batch, self._encoder.pad_id))
        arrays = {name: np.asarray(values[name]) for name in outputs}
        for j, index in enumerate(bucket):
            n = len(batch[j].ids)
            results[index] = {name: a[j, :n] if per_token else a[j] for name, a in arrays.items()}

    def _classify_rows(
        self,
        n: int,
        errors: dict[int, ItemError],
        encoded: Encoded,
        texts: dict[int, str] | None = None,
    ) -> list[Classification | ItemError]:
        rows = encoded.rows
        errors.update(_refused(encoded))
        outputs = self._run(rows, ["logits"], per_token=False)
        per_item: dict[int, list[np.ndarray]] = {}
        for row, out in zip(rows, outputs, strict=True):
            if isinstance(out, Exception):
                errors.setdefault(row.item, _failure(row.item, out))
            else:
                per_item.setdefault(row.item, []).append(softmax(out["logits"]))
        # Long texts in chunks: the mean of the windows' probabilities.
        probs = {i: np.mean(p, axis=0) for i, p in per_item.items() if i not in errors}
        probs = self._with_lexical(probs, texts)
        labels = self.manifest.labels
        k = min(self.settings.top_k, len(labels))
        results: list[Classification | ItemError] = []
        for i in range(n):
            if i in errors:
                results.append(errors[i])
                continue
            order = np.argsort(-probs[i])[:k]
            top = [LabelScore(label=labels[j], score=float(probs[i][j])) for j in order]
            results.append(Classification(label=top[0].label, score=top[0].score, top_k=top))
        return results

    def _with_lexical(
        self, probs: dict[int, np.ndarray], texts: dict[int, str] | None
    ) -> dict[int, np.ndarray]:
        """Class probabilities by item, fused with the artifact's lexical expert (in one call
        for the batch) when it has one and the items are single texts."""
        if self._lexical is None or texts is None or not probs:
            return probs
        items = list(probs)
        fused = self._lexical.fuse(np.stack(list(probs.values())), [texts[i] for i in items])
        return dict(zip(items, fused, strict=True))

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        """One Classification (label, probability, top-k) or ItemError per text, in order;
        with a lexical expert in the artifact, the encoder's and the expert's probabilities
        fused as in training."""
        self._require(TaskKind.CLASSIFICATION)
        good, errors = self._check_texts(texts)
        chunks = self.settings.long_text == "chunks"
        encoded = self._encoder.texts(good, chunks=chunks)
        return self._classify_rows(len(texts), errors, encoded, dict(good))

    def classify_pairs(self, pairs: Sequence[object]) -> list[Classification | ItemError]:
        """Classification of sentence pairs (a pair-classification artifact)."""
        self._require(TaskKind.PAIR_CLASSIFICATION)
        good, errors = _checked(pairs, check_pair, self.settings.max_chars)
        return self._classify_rows(len(pairs), errors, self._encoder.pairs(good))

    def entities(self, texts: Sequence[object]) -> list[list[Entity] | ItemError]:
        """Entities of each text as spans over the original text, or an ItemError."""
        self._require(TaskKind.TOKEN_CLASSIFICATION)
        good, errors = self._check_texts(texts)
        if self.settings.long_text == "chunks":
            encoded = self._encoder.windows(good)
        else:
            encoded = self._encoder.texts(good, chunks=False)
        errors.update(_refused(encoded))
        rows = encoded.rows
        outputs = self._run(rows, ["logits"], per_token=True)
        per_item: dict[int, tuple[list[Row], list[np.ndarray]]] = {}
        for row, out in zip(rows, outputs, strict=True):
            if isinstance(out, Exception):
                errors.setdefault(row.item, _failure(row.item, out))
            else:
                item_rows, item_probs = per_item.setdefault(row.item, ([], []))
                item_rows.append(row)
                item_probs.append(softmax(out["logits"]))
        results: list[list[Entity] | ItemError] = []
        for i, text in enumerate(texts):
            if i in errors:
                results.append(errors[i])
            else:
                item_rows, item_probs = per_item[i]
                assert isinstance(text, str)
                results.append(entity_spans(text, item_rows, item_probs, self.manifest.labels))
        return results

    def answers(self, pairs: Sequence[object]) -> list[Answer | ItemError]:
        """Extractive answers to (question, context) pairs, as spans of each context. A
        context longer than max_length is read in overlapping windows, each with the question;
        the answer is the best span of any window, decoded as in training's evaluation
        (`decode_answers`): empty text when the no-answer score beats it by more than the
        model's null threshold (SQuAD v2 models; `null_threshold_of`)."""
        self._require(TaskKind.QUESTION_ANSWERING)
        good, errors = _checked(pairs, check_pair, self.settings.max_chars)
        encoded = self._encoder.pairs(good, qa=True)
        errors.update(_refused(encoded))
        outputs = self._run(encoded.rows, ["start_logits", "end_logits"], per_token=True)
        windows: list[AnswerWindow] = []
        for row, out in zip(encoded.rows, outputs, strict=True):
            if isinstance(out, Exception):
                errors[row.item] = _failure(row.item, out)
            else:
                windows.append(_answer_window(row, out))
        decoded = decode_answers(
            windows,
            {i: pair[1] for i, pair in good},
            max_answer_length=self.settings.max_answer_tokens,
            null_threshold=null_threshold_of(self.manifest),
        )
        served = {
            i: Answer(text=a.text, start=a.start, end=a.end, score=a.score)
            for i, a in decoded.items()
        }
        return [errors[i] if i in errors else served[i] for i in range(len(pairs))]

    def answer(self, question: str, context: str) -> Answer | ItemError:
        """The answer to one question about one context."""
        return self.answers([(question, context)])[0]

    def _check_texts(
        self, texts: Sequence[object]
    ) -> tuple[list[tuple[int, str]], dict[int, ItemError]]:
        return _checked(texts, check_text, self.settings.max_chars)


T = TypeVar("T")


def _checked(
    values: Sequence[object],
    check: Callable[[int, object, int], T | ItemError],
    max_chars: int,
) -> tuple[list[tuple[int, T]], dict[int, ItemError]]:
    """Usable items with their index, and an ItemError for each item `check` refuses."""
    good: list[tuple[int, T]] = []
    errors: dict[int, ItemError] = {}
    for i, value in enumerate(values):
        checked = check(i, value, max_chars)
        if isinstance(checked, ItemError):
            errors[i] = checked
        else:
            good.append((i, checked))
    return good, errors


def _answer_window(row: Row, out: Outputs) -> AnswerWindow:
    """A question-answering row as a window of its context: the context's tokens are those of
    the second sequence that come from a word (the closing [SEP] does not)."""
    return AnswerWindow(
        item=row.item,
        start_logits=out["start_logits"],
        end_logits=out["end_logits"],
        in_context=[
            t == 1 and w is not None for t, w in zip(row.type_ids, row.word_ids, strict=True)
        ],
        offsets=row.offsets,
    )


def _refused(encoded: Encoded) -> dict[int, ItemError]:
    return {
        item: ItemError(
            index=item, reason=INFERENCE_ERROR, message=f"the tokenizer refused this item: {why}"
        )
        for item, why in encoded.failed.items()
    }


def _failure(item: int, exc: Exception) -> ItemError:
    return ItemError(
        index=item, reason=INFERENCE_ERROR, message=f"the model failed on this item: {exc}"
    )
