"""The batch predictor over a backend, and `load_predictor` for an artifact directory."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import structlog

from inference._encoding import Encoded, Row, TextEncoder, length_buckets, pad
from inference._spans import entity_spans
from inference.backend import Backend, BackendPlan, plan_backend
from inference.errors import OnnxFileMissingError, TokenizerMissingError, WrongTaskError
from inference.items import INFERENCE_ERROR, Answer, ItemError, check_pair, check_text
from inference.lexical import WeightedExpert, load_lexical
from inference.settings import InferenceSettings
from schemas import Classification, Entity, FileRole, LabelScore, ModelManifest, TaskKind
from schemas.artifact import read_manifest

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
        the answer is the best-scoring span of any window."""
        self._require(TaskKind.QUESTION_ANSWERING)
        good, errors = _checked(pairs, check_pair, self.settings.max_chars)
        encoded = self._encoder.pairs(good, qa=True)
        errors.update(_refused(encoded))
        outputs = self._run(encoded.rows, ["start_logits", "end_logits"], per_token=True)
        contexts = {i: pair[1] for i, pair in good}
        found: dict[int, Answer] = {}
        for row, out in zip(encoded.rows, outputs, strict=True):
            if isinstance(out, Exception):
                errors[row.item] = _failure(row.item, out)
            else:
                span = best_span(row, out, contexts[row.item], self.settings.max_answer_tokens)
                if row.item not in found or span.score > found[row.item].score:
                    found[row.item] = span
        return [errors[i] if i in errors else found[i] for i in range(len(pairs))]

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


def best_span(row: Row, out: Outputs, context: str, max_tokens: int) -> Answer:
    """The most probable start <= end pair within the context tokens, at most max_tokens long."""
    in_context = np.array(
        [t == 1 and w is not None for t, w in zip(row.type_ids, row.word_ids, strict=True)]
    )
    start_p = softmax(np.where(in_context, out["start_logits"], -np.inf))
    end_p = softmax(np.where(in_context, out["end_logits"], -np.inf))
    joint = np.triu(np.outer(start_p, end_p)) - np.triu(np.ones((len(start_p),) * 2), max_tokens)
    s, e = np.unravel_index(int(joint.argmax()), joint.shape)
    begin, finish = row.offsets[s][0], row.offsets[e][1]
    return Answer(text=context[begin:finish], start=begin, end=finish, score=float(joint[s, e]))


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


def _max_length(root: Path, manifest: ModelManifest) -> int:
    """The manifest's max_length, capped by the encoder's position table if config.json says."""
    config = root / "config.json"
    if config.is_file():
        positions = json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings")
        if isinstance(positions, int) and positions > 0:
            return min(manifest.max_length, positions)
    return manifest.max_length


def _parallelism(settings: InferenceSettings, plan: BackendPlan) -> tuple[int, int]:
    """(buckets run at once, intra-op threads for each run): ONNX Runtime on CPU splits the
    cores between concurrent runs; PyTorch runs one bucket at a time with all of them."""
    if plan.kind != "onnx":
        return 1, settings.threads
    cores = os.cpu_count() or 1
    budget = settings.threads or cores
    runs = settings.concurrency or min(cores, budget)
    return runs, max(1, budget // runs)


def _build_backend(
    root: Path, manifest: ModelManifest, plan: BackendPlan, threads: int, *, spin: bool = False
) -> Backend:
    if plan.kind == "torch":
        from inference.torch_backend import TorchBackend

        return TorchBackend(
            root,
            manifest.task,
            name=plan.name,
            device=plan.device,
            precision=plan.precision,
            threads=threads,
            pooling=manifest.pooling,
        )
    from inference.onnx_backend import OnnxBackend

    role = FileRole.ONNX_INT8 if plan.precision == "int8" else FileRole.ONNX_FP32
    entry = manifest.file_for(role)
    if entry is None:
        raise OnnxFileMissingError(
            f"artifact {root} has no {role.value} model; run `textroute export {root}` "
            "to add the ONNX files, or set TEXTROUTE_INFERENCE_BACKEND=torch"
        )
    return OnnxBackend(root / entry.path, name=plan.name, threads=threads, spin=spin)


def load_predictor(
    artifact_dir: Path | str, settings: InferenceSettings | None = None
) -> Predictor:
    """Verify the artifact's checksums, pick the backend, build the predictor.

    Raises an ArtifactError subclass for a missing, corrupt or incomplete artifact (no ONNX
    file for the ONNX backend: run `textroute export DIR`), InferenceConfigError for settings
    this machine cannot honour.
    """
    settings = settings if settings is not None else InferenceSettings()
    root = Path(artifact_dir)
    manifest = read_manifest(root, verify=True)
    tokenizer_json = root / "tokenizer.json"
    if not any(f.path == "tokenizer.json" for f in manifest.files) or not tokenizer_json.is_file():
        raise TokenizerMissingError(
            f"artifact {root} has no tokenizer.json (fast tokenizer) in its manifest; "
            "re-save the model with a fast tokenizer"
        )
    lexical = (
        load_lexical(root, manifest)
        if manifest.task in (TaskKind.CLASSIFICATION, TaskKind.CLASSIFY_AND_TAG)
        else None
    )
    plan = plan_backend(settings)
    concurrency, threads = _parallelism(settings, plan)
    backend = _build_backend(root, manifest, plan, threads, spin=settings.spin)
    solo = (
        _build_backend(root, manifest, plan, concurrency * threads, spin=settings.spin)
        if concurrency > 1
        else None
    )
    encoder = TextEncoder(tokenizer_json, _max_length(root, manifest), stride=settings.chunk_stride)
    log.info(
        "inference.loaded",
        model=manifest.name,
        version=manifest.version,
        task=manifest.task.value,
        backend=backend.name,
    )
    kind = Predictor
    if manifest.task is TaskKind.CLASSIFY_AND_TAG:
        from inference.multitask import MultiTaskPredictor  # it subclasses Predictor

        kind = MultiTaskPredictor
    return kind(
        manifest, backend, encoder, settings, concurrency=concurrency, solo=solo, lexical=lexical
    )
