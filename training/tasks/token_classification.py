"""Token classification (NER): BIO tags per word, subword alignment, sliding windows, seqeval."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from inference import window_centrality
from schemas import Entity, TaskKind
from training.formats.tagged import TaggedSentences
from training.tasks._bio import (
    IGNORE_INDEX,
    align_labels,
    bio_viterbi,
    continuation_ids,
    first_subwords,
)
from training.tasks._context import with_context
from training.tasks._ner_eval import report_ner, seqeval_scores

DEFAULT_STRIDE = 32

FloatArray = npt.NDArray[np.float32]


def window_stride(max_length: int, stride: int) -> int:
    """Overlap between windows of a long sentence; kept below a quarter of the window so each
    window still moves forward by most of its length."""
    return max(0, min(stride, (max_length - 3) // 4))


@dataclass(frozen=True)
class WordPredictions:
    """Per-word tag ids and probabilities of one sentence."""

    tags: list[int]
    scores: list[float]
    #: Words the tokenizer turned into no subword (e.g. a lone control character): tagged O.
    unseen: int = 0


class TokenClassificationTask:
    """Encoder + linear head per token; each word is labelled on its first subword.

    Sentences longer than `max_length` subwords become overlapping windows (`stride` tokens
    of overlap) rather than being truncated, and at prediction time each word takes the
    window where it sits most centrally. With `context_tokens` > 0 and data that knows its
    documents, each sentence is read between up to that many subwords of its neighbours on
    each side, unlabelled, in training and in evaluation alike.
    """

    kind = TaskKind.TOKEN_CLASSIFICATION
    metric_for_best = "f1"

    def __init__(
        self,
        label_names: Sequence[str],
        *,
        label_all_subwords: bool = False,
        stride: int = DEFAULT_STRIDE,
        context_tokens: int = 0,
    ) -> None:
        self.label_names = list(label_names)
        self.label_all_subwords = label_all_subwords
        self.stride = stride
        self.context_tokens = context_tokens
        self._continuation = continuation_ids(self.label_names)

    def build_model(self, base_model: str) -> PreTrainedModel:
        from transformers import AutoModelForTokenClassification

        model: PreTrainedModel = AutoModelForTokenClassification.from_pretrained(
            base_model,
            num_labels=len(self.label_names),
            id2label=dict(enumerate(self.label_names)),
            label2id={name: i for i, name in enumerate(self.label_names)},
        )
        return model

    def _tokenize(
        self, tokenizer: PreTrainedTokenizerBase, tokens: list[list[str]], max_length: int
    ) -> Any:
        return tokenizer(
            tokens,
            is_split_into_words=True,
            truncation=True,
            max_length=max_length,
            stride=window_stride(max_length, self.stride),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, data: TaggedSentences, max_length: int
    ) -> Any:
        import datasets

        contexts = with_context(
            tokenizer,
            data.tokens,
            data.documents,
            budget=self.context_tokens,
            max_length=max_length,
        )
        tags = [
            [IGNORE_INDEX] * c.start
            + list(sentence_tags)
            + [IGNORE_INDEX] * (len(c.words) - c.start - c.length)
            for c, sentence_tags in zip(contexts, data.tags, strict=True)
        ]
        ds = datasets.Dataset.from_dict({"tokens": [c.words for c in contexts], "tags": tags})
        continuation = self._continuation if self.label_all_subwords else None

        def tokenize(batch: dict[str, list[Any]]) -> Any:
            enc = self._tokenize(tokenizer, batch["tokens"], max_length)
            labels = []
            for window, sentence in enumerate(enc["overflow_to_sample_mapping"]):
                labels.append(
                    align_labels(
                        enc.word_ids(window),
                        enc["offset_mapping"][window],
                        batch["tags"][sentence],
                        continuation=continuation,
                    )
                )
            enc["labels"] = labels
            enc.pop("offset_mapping")
            enc.pop("overflow_to_sample_mapping")
            return enc

        return ds.map(tokenize, batched=True, remove_columns=ds.column_names)

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorForTokenClassification

        return DataCollatorForTokenClassification(tokenizer)

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        """Entity-level seqeval scores over the labelled positions of each window (the
        trainer's quick view; `evaluate` scores whole sentences word by word)."""
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = np.asarray(logits).argmax(axis=-1)
        gold = np.asarray(prediction.label_ids)
        gold_tags: list[list[str]] = []
        pred_tags: list[list[str]] = []
        for gold_row, pred_row in zip(gold, predicted, strict=True):
            keep = gold_row != IGNORE_INDEX
            gold_tags.append([self.label_names[i] for i in gold_row[keep]])
            pred_tags.append([self.label_names[i] for i in pred_row[keep]])
        scores = seqeval_scores(gold_tags, pred_tags)
        return {k: scores[k] for k in ("precision", "recall", "f1", "accuracy")}

    def predict_word_probs(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        tokens: list[list[str]],
        *,
        max_length: int,
        batch_size: int = 64,
        progress: str | None = None,
        documents: Sequence[int] | None = None,
    ) -> list[FloatArray]:
        """Per sentence, a (words, tags) array: each word's tag probabilities at its first
        subword, from the window where it sits most centrally; a word that became no subword
        gets a row of zeros. With `documents`, each sentence is read in its document context
        as in training. Several models' arrays can be averaged (an ensemble) before decoding.
        """
        contexts = with_context(
            tokenizer, tokens, documents, budget=self.context_tokens, max_length=max_length
        )
        enc = self._tokenize(tokenizer, [c.words for c in contexts], max_length)
        probs = _window_probs(model, tokenizer, enc, batch_size=batch_size, progress=progress)
        out = [np.zeros((len(words), len(self.label_names)), dtype=np.float32) for words in tokens]
        ranks = [np.full(len(words), -1) for words in tokens]
        for window, sentence in enumerate(enc["overflow_to_sample_mapping"]):
            word_ids = enc.word_ids(window)
            content = [p for p, w in enumerate(word_ids) if w is not None]
            if not content:
                continue
            c = contexts[sentence]
            for word_in_context, position in first_subwords(
                word_ids, enc["offset_mapping"][window]
            ).items():
                word = word_in_context - c.start
                if not 0 <= word < c.length:
                    continue  # a context word: not this sentence's to tag
                rank = window_centrality(position, content[0], content[-1])
                if rank > ranks[sentence][word]:
                    ranks[sentence][word] = rank
                    out[sentence][word] = probs[window][position]
        return out

    def decode(
        self, word_probs: Sequence[FloatArray], *, viterbi: bool = True
    ) -> list[WordPredictions]:
        """Tags of each sentence from its word probabilities: the most probable tag sequence
        that is valid BIO (no I-X after O or after another type), as the stream decodes, or
        with `viterbi=False` each word's most probable tag. Unseen words (zero rows) are tagged
        O (id 0) with score 0."""
        out = []
        for probs in word_probs:
            seen = probs.sum(axis=1) > 0
            tags = (
                bio_viterbi(probs, self.label_names) if viterbi else probs.argmax(axis=1).tolist()
            )
            tags = [t if s else 0 for t, s in zip(tags, seen, strict=True)]
            out.append(
                WordPredictions(
                    tags=tags,
                    scores=[float(probs[w, t]) for w, t in enumerate(tags)],
                    unseen=int((~seen).sum()),
                )
            )
        return out

    def predict_words(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        tokens: list[list[str]],
        *,
        max_length: int,
        batch_size: int = 64,
        progress: str | None = None,
        documents: Sequence[int] | None = None,
    ) -> list[WordPredictions]:
        """Tag each word of pre-split sentences (the label of its first subword); with
        `documents`, read each sentence in its document context as in training."""
        return self.decode(
            self.predict_word_probs(
                model,
                tokenizer,
                tokens,
                max_length=max_length,
                batch_size=batch_size,
                progress=progress,
                documents=documents,
            )
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: TaggedSentences,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """Word-level tags of whole sentences scored with seqeval: overall and per-type
        precision/recall/F1, a per-type confusion summary and the misclassified sentences."""
        predictions = self.predict_words(
            model,
            tokenizer,
            data.tokens,
            max_length=max_length,
            progress="evaluating",
            documents=data.documents,
        )
        gold = [data.tag_names(i) for i in range(len(data))]
        predicted = [[self.label_names[t] for t in p.tags] for p in predictions]
        metrics = report_ner(data.tokens, gold, predicted, self.label_names, out_dir)
        metrics["words_without_subwords"] = sum(p.unseen for p in predictions)
        return metrics


def _window_probs(
    model: Any,
    tokenizer: PreTrainedTokenizerBase,
    enc: Any,
    *,
    batch_size: int,
    progress: str | None,
) -> list[FloatArray]:
    """Softmax per token of every window, batched by length to keep padding small."""
    import torch

    from training._progress import track

    model.eval()
    device = next(model.parameters()).device
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    keys = [k for k in ("input_ids", "token_type_ids", "attention_mask") if k in enc]
    out: list[FloatArray] = [np.zeros((0, 0), dtype=np.float32)] * len(ids)
    starts = range(0, len(ids), batch_size)
    with torch.inference_mode():
        for start in track(starts, description=progress or "", enabled=progress is not None):
            idx = order[start : start + batch_size]
            batch = tokenizer.pad(
                {k: [enc[k][i] for i in idx] for k in keys}, return_tensors="pt"
            ).to(device)
            logits = model(**batch).logits.float()
            probs = torch.softmax(logits, dim=-1).cpu().numpy()
            for row, i in enumerate(idx):
                out[i] = probs[row, : len(ids[i])]
    return out


def extract_entities(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    *,
    max_length: int = 128,
    stride: int = DEFAULT_STRIDE,
    batch_size: int = 32,
) -> list[list[Entity]]:
    """Entities of raw texts as spans over the ORIGINAL text (type, text, offsets, score).

    Long texts are read in overlapping windows; each subword takes the window where it sits
    most centrally. The B-/I- merging is the stream's (`inference._spans`), so training
    reports and the routed events read tags the same way: a word is tagged by its first
    subword, its span covers all its subwords.
    """
    from inference import Row, entity_spans

    config: Any = model.config
    label_names = [str(config.id2label[i]) for i in range(config.num_labels)]
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        stride=window_stride(max_length, stride),
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    probs = _window_probs(model, tokenizer, enc, batch_size=batch_size, progress=None)
    # Per text: (token start, end) -> (centrality, id, word id, probability row).
    best: list[dict[tuple[int, int], tuple[int, int, int, FloatArray]]] = [{} for _ in texts]
    for window, text_index in enumerate(enc["overflow_to_sample_mapping"]):
        word_ids = enc.word_ids(window)
        content = [p for p, w in enumerate(word_ids) if w is not None]
        for position in content:
            span = tuple(enc["offset_mapping"][window][position])
            rank = window_centrality(position, content[0], content[-1])
            seen = best[text_index].get(span)
            if seen is None or rank > seen[0]:
                best[text_index][span] = (
                    rank,
                    enc["input_ids"][window][position],
                    word_ids[position],
                    probs[window][position],
                )
    results = []
    for text_index, text in enumerate(texts):
        tokens = sorted(best[text_index].items())
        row = Row(
            item=text_index,
            ids=[t[1][1] for t in tokens],
            type_ids=[0] * len(tokens),
            offsets=[t[0] for t in tokens],
            word_ids=[t[1][2] for t in tokens],
        )
        matrix = np.stack([t[1][3] for t in tokens]) if tokens else np.zeros((0, len(label_names)))
        results.append(entity_spans(text, [row], [matrix], label_names))
    return results
