"""The batching machinery the predictors share: encoder, length buckets, backend; no task
methods (inference.predictor and inference.multitask add those)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import structlog

from inference._encoding import MAX_PAD_RATIO, Encoded, Row, TextEncoder, length_buckets, pad
from inference.backend import Backend
from inference.items import INFERENCE_ERROR, ItemError, check_text
from inference.lexical import WeightedExpert
from inference.settings import InferenceSettings
from schemas import Classification, LabelScore, ModelManifest

log = structlog.get_logger(__name__)

Outputs = dict[str, np.ndarray]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis, stable for large logits."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    probs: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return probs


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Independent per-label probabilities (a multi-label head), stable for any logit."""
    x = np.asarray(logits, dtype=np.float64)
    probs: np.ndarray = np.exp(-np.logaddexp(0.0, -x))
    return probs


def classifications(
    probs: dict[int, np.ndarray],
    labels: Sequence[str],
    top_k: int,
    thresholds: Sequence[float] | None = None,
) -> dict[int, Classification]:
    """Classification per item from its class probabilities: the top `top_k` labels and, with
    `thresholds` (a multi-label head), every label at or above its threshold, best first.
    Sorted in one call for the batch and built without re-validation (the scores are clipped
    to [0, 1] here), which keeps this off the critical path of a GPU batch of hundreds."""
    if not probs:
        return {}
    items = list(probs)
    matrix = np.clip(np.stack([probs[i] for i in items]), 0.0, 1.0)
    orders = np.argsort(-matrix, axis=1, kind="stable")
    k = min(top_k, len(labels))
    built: dict[int, Classification] = {}
    for row, item in enumerate(items):
        scores = matrix[row].tolist()
        order = orders[row].tolist()
        top = [LabelScore.model_construct(label=labels[j], score=scores[j]) for j in order[:k]]
        above = None
        if thresholds is not None:
            above = [
                LabelScore.model_construct(label=labels[j], score=scores[j])
                for j in order
                if scores[j] >= thresholds[j]
            ]
        built[item] = Classification.model_construct(
            label=top[0].label, score=top[0].score, top_k=top, labels=above
        )
    return built


class BatchRunner:
    """Runs encoded rows through a backend in length buckets (side by side on the one
    backend with `concurrency` > 1); a bad row gets its exception in its place and never
    costs the rest of the batch its results. A base for the predictors: it serves no task itself."""

    def __init__(
        self,
        manifest: ModelManifest,
        backend: Backend,
        encoder: TextEncoder,
        settings: InferenceSettings,
        *,
        concurrency: int = 1,
        lexical: WeightedExpert | None = None,
        pad_ratio: float | None = MAX_PAD_RATIO,
    ) -> None:
        self.manifest = manifest
        # None on a GPU: the whole batch in one call (see length_buckets).
        self._pad_ratio = pad_ratio
        self.backend = backend
        # Fused with the encoder's class probabilities of single texts (the artifact's expert).
        self._lexical = lexical
        self.backend_name = backend.name
        self.settings = settings
        self._encoder = encoder
        self._pool = (
            ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="inference-bucket")
            if concurrency > 1
            else None
        )

    def _run(
        self, rows: Sequence[Row], outputs: Sequence[str], *, per_token: bool
    ) -> list[Outputs | Exception]:
        """Backend outputs per row, length-bucketed (per-token outputs trimmed to the row's
        tokens); a failing batch is retried row by row so only the row at fault fails. With
        `concurrency` > 1 the buckets run side by side, one backend call per thread."""
        results: list[Outputs | Exception] = [ValueError("not run")] * len(rows)
        buckets = list(
            length_buckets(
                rows,
                self.settings.max_batch,
                self._pad_ratio,
                max_tokens=self.settings.max_batch_tokens,
            )
        )

        def run(bucket: list[int]) -> None:
            try:
                self._run_batch(rows, bucket, outputs, per_token, results)
                return
            except Exception as exc:  # any runtime failure; a lone row owns it
                if len(bucket) == 1:
                    results[bucket[0]] = self._failed(rows[bucket[0]], exc)
                    return
            for index in bucket:
                try:
                    self._run_batch(rows, [index], outputs, per_token, results)
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
        rows: Sequence[Row],
        bucket: list[int],
        outputs: Sequence[str],
        per_token: bool,
        results: list[Outputs | Exception],
    ) -> None:
        batch = [rows[i] for i in bucket]
        values = self.backend(pad(batch, self._encoder.pad_id))
        arrays = {name: np.asarray(values[name]) for name in outputs}
        for j, index in enumerate(bucket):
            n = len(batch[j].ids)
            results[index] = {name: a[j, :n] if per_token else a[j] for name, a in arrays.items()}

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

    def _encode(self, good: Sequence[tuple[int, str]]) -> Encoded:
        """Rows for single texts, a long one read by this predictor's long_text policy."""
        return self._encoder.encode(
            good, self.settings.long_text, stride=self.settings.chunk_stride
        )

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
