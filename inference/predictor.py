"""The batch predictor over a backend (inference.loading builds it for an artifact)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from inference._answers import AnswerWindow, decode_answers, null_threshold_of
from inference._encoding import Encoded, Row
from inference._runner import (
    BatchRunner,
    Outputs,
    _checked,
    _failure,
    _refused,
    classifications,
    sigmoid,
    softmax,
)
from inference._spans import entity_spans
from inference.errors import WrongTaskError
from inference.items import Answer, ItemError, check_pair
from inference.settings import LongText
from schemas import Classification, Entity, TaskKind


class Predictor(BatchRunner):
    """Classifies texts or pairs, or tags entities, in batches; a bad item gets an ItemError
    in its place and never costs the rest of the batch its results."""

    def _require(self, *tasks: TaskKind) -> None:
        if self.manifest.task not in tasks:
            wanted = " or ".join(t.value for t in tasks)
            raise WrongTaskError(
                f"model {self.manifest.name} is a {self.manifest.task.value} model, not "
                f"{wanted}; load the matching artifact"
            )

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
        thresholds = self.manifest.thresholds  # set for (and only for) multi-label models
        activation = softmax if thresholds is None else sigmoid
        per_item: dict[int, list[np.ndarray]] = {}
        for row, out in zip(rows, outputs, strict=True):
            if isinstance(out, Exception):
                errors.setdefault(row.item, _failure(row.item, out))
            else:
                per_item.setdefault(row.item, []).append(out["logits"])
        # One activation over every window of the batch (a GPU batch is hundreds of rows).
        if per_item:
            stacked = activation(np.stack([w for ws in per_item.values() for w in ws]))
            at = 0
            for i, ws in per_item.items():
                per_item[i] = list(stacked[at : at + len(ws)])
                at += len(ws)
        # Long texts in chunks: the mean of the windows' probabilities. For independent labels
        # too (not the max): the thresholds were tuned on one window a text, and a mean keeps
        # a label's probability on that scale, where a max would rise with every extra window
        # and add labels to long texts that only brush a topic.
        probs = {
            i: p[0] if len(p) == 1 else np.mean(p, axis=0)
            for i, p in per_item.items()
            if i not in errors
        }
        probs = self._with_lexical(probs, texts)
        built = classifications(probs, self.manifest.labels, self.settings.top_k, thresholds)
        return [errors[i] if i in errors else built[i] for i in range(n)]

    def classify(self, texts: Sequence[object]) -> list[Classification | ItemError]:
        """One Classification (label, probability, top-k) or ItemError per text, in order;
        with a lexical expert in the artifact, the encoder's and the expert's probabilities
        fused as in training. A multi-label model scores each label with its own sigmoid and
        also answers `labels`: every label at or above its threshold, best first."""
        self._require(TaskKind.CLASSIFICATION, TaskKind.MULTI_LABEL)
        good, errors = self._check_texts(texts)
        encoded = self._encode(good)
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
        encoded = self._encode(good)
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


Runner = TypeVar("Runner", bound=BatchRunner)


def with_long_text(
    predictor: Runner, long_text: LongText | None = None, *, chunk_stride: int | None = None
) -> Runner:
    """`predictor` reading long texts by `long_text` (None: its own) with `chunk_stride`
    (None: its own): itself when that is its policy already, else a twin (a Predictor or a
    MultiTaskPredictor alike) sharing its backend sessions, encoder and threads. The policy is
    only how texts are encoded, never the graph: pipelines reading one artifact by different
    policies hold one copy of the model."""
    update: dict[str, object] = {}
    if long_text is not None:
        update["long_text"] = long_text
    if chunk_stride is not None:
        if chunk_stride < 0:
            raise ValueError(f"chunk_stride must be 0 or more, not {chunk_stride}")
        update["chunk_stride"] = chunk_stride
    settings = predictor.settings.model_copy(update=update)
    if settings == predictor.settings:
        return predictor
    twin = copy.copy(predictor)
    twin.settings = settings
    return twin


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
