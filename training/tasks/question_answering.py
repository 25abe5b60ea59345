"""Extractive question answering (SQuAD): start/end heads over windows of long contexts."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from inference import DecodedAnswer, best_span
from schemas import TaskKind
from training.evaluation import METRICS_JSON, MISCLASSIFIED_CSV
from training.formats.squad import QAExamples
from training.tasks._squad import (
    FloatArray,
    answer_positions,
    best_answers,
    squad_scores,
    tokenize_windows,
    window_stride,
)

PREDICTIONS_JSON = "predictions.json"
DEFAULT_STRIDE = 128
DEFAULT_MAX_ANSWER_LENGTH = 30


class QuestionAnsweringTask:
    """Encoder + start/end span head; contexts longer than the window are read in overlapping
    windows, and the best span over all windows is the answer (or none, for SQuAD v2)."""

    kind = TaskKind.QUESTION_ANSWERING
    #: The trainer's quick metric: token-level F1 of the best span against the gold span, per
    #: window; the official EM/F1 over whole examples comes from `evaluate`.
    metric_for_best = "span_f1"

    def __init__(
        self,
        *,
        stride: int = DEFAULT_STRIDE,
        max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
        null_threshold: float | None = None,
    ) -> None:
        self.label_names: list[str] = []
        self.stride = stride
        self.max_answer_length = max_answer_length
        self.null_threshold = null_threshold

    def build_model(self, base_model: str) -> PreTrainedModel:
        from transformers import AutoModelForQuestionAnswering

        model: PreTrainedModel = AutoModelForQuestionAnswering.from_pretrained(base_model)
        return model

    def _windows(
        self, tokenizer: PreTrainedTokenizerBase, data: QAExamples, max_length: int
    ) -> Any:
        return tokenize_windows(
            tokenizer,
            [e.question for e in data.examples],
            [e.context for e in data.examples],
            max_length=max_length,
            stride=window_stride(max_length, self.stride),
        )

    def encode(self, tokenizer: PreTrainedTokenizerBase, data: QAExamples, max_length: int) -> Any:
        """Windows with start/end token positions of the first gold answer ([CLS] when the
        answer is not in that window or there is none)."""
        import datasets

        enc = self._windows(tokenizer, data, max_length)
        starts, ends = [], []
        for window, example in enumerate(enc["overflow_to_sample_mapping"]):
            answers = data.examples[example].answers
            start, end = answer_positions(enc, window, answers[0] if answers else None)
            starts.append(start)
            ends.append(end)
        columns = {k: enc[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc}
        return datasets.Dataset.from_dict(
            {**columns, "start_positions": starts, "end_positions": ends}
        )

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        predictions: Any = prediction.predictions
        labels: Any = prediction.label_ids
        start_logits, end_logits = predictions[0], predictions[1]
        gold_start, gold_end = labels[0], labels[1]
        exact, overlap = [], []
        for s_row, e_row, gs, ge in zip(
            start_logits, end_logits, gold_start, gold_end, strict=True
        ):
            # Any token may bound the span here: a gold span at [CLS] means "not in this window".
            anywhere = np.ones(len(s_row), dtype=bool)
            found = best_span(
                np.asarray(s_row), np.asarray(e_row), anywhere, self.max_answer_length
            )
            s, e = found[:2] if found is not None else (0, 0)
            exact.append(float((s, e) == (int(gs), int(ge))))
            common = max(0, min(e, int(ge)) - max(s, int(gs)) + 1)
            if common == 0:
                overlap.append(0.0)
                continue
            precision, recall = common / (e - s + 1), common / (int(ge) - int(gs) + 1)
            overlap.append(2 * precision * recall / (precision + recall))
        return {"span_exact": float(np.mean(exact)), "span_f1": float(np.mean(overlap))}

    def predict(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        questions: Sequence[str],
        contexts: Sequence[str],
        *,
        max_length: int,
        batch_size: int = 32,
        progress: str | None = None,
    ) -> list[DecodedAnswer]:
        """The answer span (character offsets into its context) of each question."""
        enc = tokenize_windows(
            tokenizer,
            questions,
            contexts,
            max_length=max_length,
            stride=window_stride(max_length, self.stride),
        )
        start_logits, end_logits = _window_logits(
            model, tokenizer, enc, batch_size=batch_size, progress=progress
        )
        return best_answers(
            start_logits,
            end_logits,
            enc,
            contexts,
            max_answer_length=self.max_answer_length,
            null_threshold=self.null_threshold,
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: QAExamples,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """Official SQuAD exact match and F1 over whole examples; with `out_dir`, also the
        predictions (id -> answer) and the wrong answers, lowest F1 first."""
        examples = data.examples
        answers = self.predict(
            model,
            tokenizer,
            [e.question for e in examples],
            [e.context for e in examples],
            max_length=max_length,
            progress="evaluating",
        )
        truths = [[text for text, _ in e.answers] for e in examples]
        metrics: dict[str, Any] = squad_scores([a.text for a in answers], truths)
        metrics["null_threshold"] = self.null_threshold
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            predictions = {e.id: a.text for e, a in zip(examples, answers, strict=True)}
            (out_dir / PREDICTIONS_JSON).write_text(
                json.dumps(predictions, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            metrics["wrong"] = _write_wrong(out_dir / MISCLASSIFIED_CSV, data, answers, truths)
            metrics["files"] = {"predictions": PREDICTIONS_JSON, "misclassified": MISCLASSIFIED_CSV}
            (out_dir / METRICS_JSON).write_text(
                json.dumps(metrics, indent=2) + "\n", encoding="utf-8"
            )
        return metrics


def _write_wrong(
    path: Path,
    data: QAExamples,
    answers: Sequence[DecodedAnswer],
    truths: Sequence[Sequence[str]],
) -> int:
    from training.tasks._squad import token_f1

    rows = []
    for example, answer, truth in zip(data.examples, answers, truths, strict=True):
        f1 = max(token_f1(answer.text, t) for t in (truth or [""]))
        if f1 < 1.0:
            rows.append((f1, example, answer, truth))
    rows.sort(key=lambda r: (r[0], -r[2].score))
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "title", "question", "predicted", "gold", "f1", "score"])
        for f1, example, answer, truth in rows:
            writer.writerow(
                [
                    example.id,
                    example.title,
                    example.question,
                    answer.text,
                    " | ".join(truth),
                    f"{f1:.3f}",
                    f"{answer.score:.4f}",
                ]
            )
    return len(rows)


def _window_logits(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    enc: Any,
    *,
    batch_size: int,
    progress: str | None,
) -> tuple[list[FloatArray], list[FloatArray]]:
    """Start and end logits of every window, batched by length to keep padding small."""
    import torch

    from training._progress import track

    model.eval()
    device = next(model.parameters()).device
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    starts: list[FloatArray] = [np.zeros(0, dtype=np.float32)] * len(ids)
    ends: list[FloatArray] = [np.zeros(0, dtype=np.float32)] * len(ids)
    with torch.inference_mode():
        for begin in track(
            range(0, len(ids), batch_size), description=progress or "", enabled=progress is not None
        ):
            idx = order[begin : begin + batch_size]
            batch = tokenizer.pad({k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt")
            out = model(**batch.to(device))
            s = out.start_logits.float().cpu().numpy()
            e = out.end_logits.float().cpu().numpy()
            for row, i in enumerate(idx):
                starts[i], ends[i] = s[row, : len(ids[i])], e[row, : len(ids[i])]
    return starts, ends


def answer_question(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    question: str,
    context: str,
    *,
    max_length: int = 384,
    stride: int = DEFAULT_STRIDE,
    max_answer_length: int = DEFAULT_MAX_ANSWER_LENGTH,
    null_threshold: float | None = None,
) -> DecodedAnswer:
    """Answer one question from one context (a span of the context, with its offsets)."""
    from training.errors import DataError

    if not question.strip():
        raise DataError("the question is empty: ask something")
    if not context.strip():
        raise DataError("the context is empty: give the text that holds the answer")
    task = QuestionAnsweringTask(
        stride=stride, max_answer_length=max_answer_length, null_threshold=null_threshold
    )
    return task.predict(model, tokenizer, [question], [context], max_length=max_length)[0]
