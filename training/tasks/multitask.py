"""Classification and NER on one encoder: one per-token head whose labels are tags, then classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from schemas import DataRef, TaskKind
from training.data import LabelledTexts
from training.errors import ConfigError, DataError
from training.formats.tagged import TaggedSentences
from training.tasks._bio import IGNORE_INDEX
from training.tasks._heads import HeadSlice, label_maps
from training.tasks.classification import ClassificationTask
from training.tasks.token_classification import DEFAULT_STRIDE, TokenClassificationTask

CLASSIFICATION_DIR = "classification"
NER_DIR = "ner"


@dataclass(frozen=True)
class TextsAndSentences:
    """One split of a classify-and-tag run: labelled texts for the class, tagged sentences for
    the entities. A test split may hold only one of them."""

    texts: LabelledTexts | None
    sentences: TaggedSentences | None

    def __len__(self) -> int:
        return sum(len(part) for part in (self.texts, self.sentences) if part is not None)

    @property
    def ref(self) -> DataRef:
        """Both sources in one reference (`a + b`), rows counted together."""
        refs = [part.ref for part in (self.texts, self.sentences) if part is not None]
        if len(refs) == 1:
            return refs[0]
        splits = [r.split for r in refs if r.split]
        return DataRef(
            source=" + ".join(r.source for r in refs),
            split=" + ".join(splits) if splits else None,
            rows=len(self),
            columns=[c for r in refs for c in r.columns],
        )


def headline_score(accuracy: float | None, f1: float | None) -> float:
    """What selects the best checkpoint: the mean of class accuracy and entity F1 (of those
    measured), so neither task can be given up for the other."""
    present = [v for v in (accuracy, f1) if v is not None]
    return float(np.mean(present)) if present else 0.0


class ClassifyAndTagTask:
    """One AutoModelForTokenClassification whose labels are `tag_names + class_names`.

    A text of the classification data is labelled at [CLS] only, with its class's id (after
    the tags); a sentence of the NER data is labelled on its words' first subwords, [CLS] left
    out. The class is read from [CLS] over the class columns, the tags from the words over the
    tag columns, so both come out of one encoder pass and the ONNX export of token
    classification serves unchanged.
    """

    kind = TaskKind.CLASSIFY_AND_TAG
    metric_for_best = "score"

    def __init__(
        self,
        tag_names: Sequence[str],
        class_names: Sequence[str],
        *,
        label_all_subwords: bool = False,
        stride: int = DEFAULT_STRIDE,
        context_tokens: int = 0,
        label_smoothing: float = 0.0,
    ) -> None:
        shared = sorted(set(tag_names) & set(class_names))
        if shared:
            raise ConfigError(
                f"class name(s) {shared} are also NER tags; one head holds both label sets, "
                "so rename the classes (--label-names)"
            )
        if not tag_names or not class_names:
            raise ConfigError("a classify-and-tag model needs NER tags and at least two classes")
        self.tag_names = list(tag_names)
        self.class_names = list(class_names)
        self.label_names = self.tag_names + self.class_names
        self.label_smoothing = label_smoothing
        self._tagger = TokenClassificationTask(
            self.tag_names,
            label_all_subwords=label_all_subwords,
            stride=stride,
            context_tokens=context_tokens,
        )
        self._classifier = ClassificationTask(self.class_names)

    @property
    def n_tags(self) -> int:
        return len(self.tag_names)

    def build_model(self, base_model: str) -> PreTrainedModel:
        from transformers import AutoModelForTokenClassification

        # Not TokenClassificationTask's: the class names are not BIO tags.
        model: PreTrainedModel = AutoModelForTokenClassification.from_pretrained(
            base_model, **label_maps(self.label_names)
        )
        return model

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, data: TextsAndSentences, max_length: int
    ) -> Any:
        """NER windows as token classification encodes them, then the texts with their class id
        (offset past the tags) at [CLS] and -100 everywhere else, in one dataset."""
        import datasets

        parts = []
        if data.sentences is not None:
            parts.append(self._tagger.encode(tokenizer, data.sentences, max_length))
        if data.texts is not None:
            offset = self.n_tags

            def at_cls(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
                return {
                    "labels": [
                        [offset + label] + [IGNORE_INDEX] * (len(ids) - 1)
                        for ids, label in zip(batch["input_ids"], batch["labels"], strict=True)
                    ]
                }

            texts = self._classifier.encode(tokenizer, data.texts, max_length)
            # Columns named in remove_columns but returned by the function are replaced.
            parts.append(texts.map(at_cls, batched=True, remove_columns=["labels"]))
        if not parts:
            raise DataError("a classify-and-tag split holds neither texts nor sentences")
        if len(parts) == 2:
            parts[1] = parts[1].cast(parts[0].features)
        return datasets.concatenate_datasets(parts)

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        return self._tagger.collator(tokenizer)

    def loss(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        """Mean of the two tasks' mean cross-entropies over the batch (of the tasks present).

        A plain mean over labelled positions would weigh a text (one label, at [CLS]) like one
        word of a sentence, about 1/15 of a sentence; here each task weighs the same. Each
        task's softmax is over its own columns, as inference reads them. `num_items_in_batch`
        (labelled positions) is not used: positions are not what is averaged.
        """
        import torch
        from torch.nn import functional

        logits = outputs["logits"]
        n = self.n_tags
        is_text = labels[:, 0] >= n
        losses = []
        if bool(is_text.any()):
            losses.append(
                functional.cross_entropy(
                    logits[is_text, 0, n:],
                    labels[is_text, 0] - n,
                    label_smoothing=self.label_smoothing,
                )
            )
        tags = labels[~is_text]
        if bool((tags != IGNORE_INDEX).any()):
            losses.append(
                functional.cross_entropy(
                    logits[~is_text][..., :n].reshape(-1, n),
                    tags.reshape(-1),
                    ignore_index=IGNORE_INDEX,
                    label_smoothing=self.label_smoothing,
                )
            )
        if not losses:
            return logits.sum() * 0.0  # nothing labelled: no gradient, but a graph to backprop
        return torch.stack(losses).mean()

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        """Class accuracy/F1 of the texts and entity P/R/F1 of the sentences, prefixed `class_`
        and `entity_`, and `score`, their headline mean."""
        logits = prediction.predictions
        logits = np.asarray(logits[0] if isinstance(logits, tuple) else logits)
        labels = np.asarray(prediction.label_ids)
        n = self.n_tags
        is_text = labels[:, 0] >= n
        out: dict[str, float] = {}
        if is_text.any():
            texts = EvalPrediction(
                predictions=logits[is_text, 0, n:], label_ids=labels[is_text, 0] - n
            )
            out.update(
                {f"class_{k}": v for k, v in self._classifier.compute_metrics(texts).items()}
            )
        if (~is_text).any():
            sentences = EvalPrediction(
                predictions=logits[~is_text][..., :n], label_ids=labels[~is_text]
            )
            out.update(
                {f"entity_{k}": v for k, v in self._tagger.compute_metrics(sentences).items()}
            )
        out["score"] = headline_score(out.get("class_accuracy"), out.get("entity_f1"))
        return out

    def heads(self, model: Any) -> tuple[HeadSlice, HeadSlice]:
        """The model seen as a sequence classifier (class columns at [CLS]) and as a tagger (tag
        columns per token), for the single-task evaluation and prediction helpers."""
        return (
            HeadSlice(model, self.class_names, self.n_tags, first_token=True),
            HeadSlice(model, self.tag_names, 0),
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: TextsAndSentences,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """The classification report of the texts (in out_dir/classification) and the seqeval
        report of the sentences (in out_dir/ner), and `score`, the mean of class accuracy and
        entity F1."""
        classifier, tagger = self.heads(model)
        metrics: dict[str, Any] = {}
        if data.texts is not None:
            metrics["classification"] = self._classifier.evaluate(
                classifier,  # type: ignore[arg-type]
                tokenizer,
                data.texts,
                max_length=max_length,
                out_dir=out_dir / CLASSIFICATION_DIR if out_dir is not None else None,
            )
        if data.sentences is not None:
            metrics["ner"] = self._tagger.evaluate(
                tagger,  # type: ignore[arg-type]
                tokenizer,
                data.sentences,
                max_length=max_length,
                out_dir=out_dir / NER_DIR if out_dir is not None else None,
            )
        metrics["score"] = headline_score(
            metrics.get("classification", {}).get("accuracy"), metrics.get("ner", {}).get("f1")
        )
        return metrics
