"""Run PyTorch, fp32 ONNX and int8 ONNX on the same batches and measure how far they differ."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from schemas import ModelManifest, TaskKind
from training._progress import track
from training.export.report import ParityFigures
from training.export.sample import EvalSample

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from inference.lexical import WeightedExpert

#: Tasks with one row of logits a text (no per-token outputs to mask).
_PER_TEXT = (TaskKind.CLASSIFICATION, TaskKind.PAIR_CLASSIFICATION, TaskKind.MULTI_LABEL)

Outputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Batch:
    """One padded batch of the sample and the rows of the sample it holds."""

    rows: list[int]
    inputs: dict[str, np.ndarray]
    # Per row, the word index of each token (None for special tokens), for NER words input.
    word_ids: list[list[int | None]] | None = None


def encode(
    sample: EvalSample,
    tokenizer: PreTrainedTokenizerBase,
    manifest: ModelManifest,
    names: Sequence[str],
    batch_size: int,
) -> list[Batch]:
    """Tokenize like the stream does (truncate to max_length) and pad per length-sorted batch."""
    n = len(sample)
    words = sample.words
    if words is not None:
        lengths = [sum(len(w) for w in ws) for ws in words]
    else:
        lengths = [
            len(t) + len(sample.pairs[i]) if sample.pairs else len(t)
            for i, t in enumerate(sample.texts)
        ]
    order = sorted(range(n), key=lengths.__getitem__)
    truncation: bool | str = "only_second" if manifest.task is TaskKind.QUESTION_ANSWERING else True
    batches = []
    for start in range(0, n, batch_size):
        rows = order[start : start + batch_size]
        if words is not None:
            enc = tokenizer(
                [words[i] for i in rows],
                is_split_into_words=True,
                truncation=True,
                max_length=manifest.max_length,
                padding=True,
                return_tensors="np",
            )
            word_ids = [enc.word_ids(j) for j in range(len(rows))]
        else:
            enc = tokenizer(
                [sample.texts[i] for i in rows],
                [sample.pairs[i] for i in rows] if sample.pairs is not None else None,
                truncation=truncation,
                max_length=manifest.max_length,
                padding=True,
                return_tensors="np",
            )
            word_ids = None
        inputs = {k: np.asarray(enc[k], dtype=np.int64) for k in names}
        batches.append(Batch(rows=rows, inputs=inputs, word_ids=word_ids))
    return batches


def run_torch(
    model: PreTrainedModel, batches: list[Batch], outputs: Sequence[str]
) -> list[Outputs]:
    import torch

    results = []
    with torch.no_grad():
        for batch in track(batches, description="PyTorch fp32"):
            out = model(**{k: torch.from_numpy(v) for k, v in batch.inputs.items()})
            results.append({name: out[name].float().numpy() for name in outputs})
    return results


def run_onnx(path: Path, batches: list[Batch], outputs: Sequence[str], label: str) -> list[Outputs]:
    from inference import cpu_session

    # The stream's own session: the gates measure the graph as it will be served.
    session = cpu_session(path)
    results = []
    for batch in track(batches, description=label):
        values = session.run(list(outputs), batch.inputs)
        results.append(dict(zip(outputs, values, strict=True)))
    return results


def _token_mask(batch: Batch) -> np.ndarray:
    """Tokens that carry a prediction: not padding (and, for NER words, not special tokens)."""
    mask = batch.inputs["attention_mask"].astype(bool)
    if batch.word_ids is not None:
        words = np.array([[w is not None for w in ids] for ids in batch.word_ids], dtype=bool)
        mask &= words
    return mask


def _argmaxes(task: TaskKind, batch: Batch, out: Outputs) -> Iterator[np.ndarray]:
    """The predictions the task makes, flattened: labels, token labels, or span ends."""
    if task in _PER_TEXT:  # a multi-label model: its top label
        yield out["logits"].argmax(-1)
    elif task is TaskKind.TOKEN_CLASSIFICATION:
        yield out["logits"].argmax(-1)[_token_mask(batch)]
    else:
        pad = ~batch.inputs["attention_mask"].astype(bool)
        for name in ("start_logits", "end_logits"):
            yield np.where(pad, -np.inf, out[name]).argmax(-1)


def _max_diff(task: TaskKind, batch: Batch, a: Outputs, b: Outputs) -> float:
    worst = 0.0
    for name in a:
        diff = np.abs(a[name] - b[name])
        if task not in _PER_TEXT:
            diff = diff[batch.inputs["attention_mask"].astype(bool)]
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def _word_tags(
    batch: Batch, out: Outputs, labels: Sequence[str], n_words: list[int]
) -> list[list[str]]:
    """Word-level tags from the first sub-token of each word; truncated words are 'O'."""
    pred = out["logits"].argmax(-1)
    assert batch.word_ids is not None
    tags = []
    for j, ids in enumerate(batch.word_ids):
        row = ["O"] * n_words[j]
        seen: set[int] = set()
        for t, w in enumerate(ids):
            if w is not None and w not in seen:
                seen.add(w)
                row[w] = labels[int(pred[j, t])]
        tags.append(row)
    return tags


def _micro_f1(
    manifest: ModelManifest,
    sample: EvalSample,
    batches: list[Batch],
    outs: list[Outputs],
    lexical: WeightedExpert | None,
) -> float:
    """A multi-label model's micro-F1 at its thresholds, its lexical expert fused as served."""
    from sklearn.metrics import f1_score

    from inference import fuse_log_odds
    from training.multilabel_metrics import decide, sigmoid

    assert sample.label_sets is not None and manifest.thresholds is not None
    n_labels = len(manifest.labels)
    gold = np.zeros((len(sample), n_labels), dtype=np.int64)
    probs = np.zeros((len(sample), n_labels))
    for b, o in zip(batches, outs, strict=True):
        p = sigmoid(o["logits"])
        if lexical is not None:
            p = fuse_log_odds(
                p, lexical.expert.scores([sample.texts[r] for r in b.rows]), lexical.weight
            )
        probs[b.rows] = p
    for r, labels in enumerate(sample.label_sets):
        gold[r, labels] = 1
    predicted = decide(probs, manifest.thresholds)
    return float(f1_score(gold, predicted, average="micro", zero_division=0))


def _metric(
    task: TaskKind,
    sample: EvalSample,
    batches: list[Batch],
    outs: list[Outputs],
    labels: Sequence[str],
) -> float | None:
    if task in (TaskKind.CLASSIFICATION, TaskKind.PAIR_CLASSIFICATION) and sample.labels:
        hits = sum(
            int(p == sample.labels[r])
            for b, o in zip(batches, outs, strict=True)
            for r, p in zip(b.rows, o["logits"].argmax(-1), strict=True)
        )
        return hits / len(sample)
    if task is TaskKind.TOKEN_CLASSIFICATION and sample.tags is not None and sample.words:
        from seqeval.metrics import f1_score

        gold: list[list[str]] = []
        pred: list[list[str]] = []
        for b, o in zip(batches, outs, strict=True):
            pred += _word_tags(b, o, labels, [len(sample.words[r]) for r in b.rows])
            gold += [sample.tags[r] for r in b.rows]
        return float(f1_score(gold, pred))
    return None


def measure(
    sample: EvalSample,
    manifest: ModelManifest,
    batches: list[Batch],
    torch_out: list[Outputs],
    fp32_out: list[Outputs],
    int8_out: list[Outputs],
    *,
    lexical: WeightedExpert | None = None,
) -> ParityFigures:
    """The parity figures the gates check; a multi-label model's metric is its micro-F1 at
    its thresholds, with `lexical` (its expert, if it has one) fused as the stream serves it."""
    task = manifest.task
    max_diff = max(
        _max_diff(task, b, t, f) for b, t, f in zip(batches, torch_out, fp32_out, strict=True)
    )
    same = total = 0
    for b, f, q in zip(batches, fp32_out, int8_out, strict=True):
        for af, aq in zip(_argmaxes(task, b, f), _argmaxes(task, b, q), strict=True):
            same += int((af == aq).sum())
            total += int(af.size)
    if task is TaskKind.MULTI_LABEL:
        runs = (torch_out, fp32_out, int8_out)
        micro = (
            [_micro_f1(manifest, sample, batches, o, lexical) for o in runs]
            if sample.label_sets is not None
            else [None, None, None]
        )
        return ParityFigures(
            samples=len(sample),
            data_source=sample.source,
            max_logit_diff=max_diff,
            argmax_agreement=same / total if total else 1.0,
            metric="f1_micro" if sample.label_sets is not None else None,
            metric_torch=micro[0],
            metric_fp32=micro[1],
            metric_int8=micro[2],
        )
    metric_name = None
    if task is TaskKind.TOKEN_CLASSIFICATION and sample.tags is not None:
        metric_name = "f1"
    elif task is not TaskKind.QUESTION_ANSWERING and sample.labels:
        metric_name = "accuracy"
    labels = manifest.labels
    return ParityFigures(
        samples=len(sample),
        data_source=sample.source,
        max_logit_diff=max_diff,
        argmax_agreement=same / total if total else 1.0,
        metric=metric_name,
        metric_torch=_metric(task, sample, batches, torch_out, labels),
        metric_fp32=_metric(task, sample, batches, fp32_out, labels),
        metric_int8=_metric(task, sample, batches, int8_out, labels),
    )
