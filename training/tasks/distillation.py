"""Knowledge distillation of a sequence classifier into a student with fewer encoder layers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from schemas import DataRef
from training.data import LabelledTexts
from training.errors import ConfigError
from training.tasks._bio import IGNORE_INDEX
from training.tasks.classification import ClassificationTask
from training.tasks.multitask import ClassifyAndTagTask, TextsAndSentences


def kept_layers(total: int, keep: int) -> list[int]:
    """The teacher layers a `keep`-layer student starts from: every (total/keep)-th layer from
    the bottom (0, 2, 4 of 6 for 3), DistilBERT's choice (Sanh et al. 2019), which spans the
    whole depth rather than keeping only the bottom or the top of it."""
    if not 1 <= keep < total:
        raise ConfigError(
            f"--layers {keep}: a student keeps between 1 and {total - 1} of the teacher's "
            f"{total} layers"
        )
    return [i * total // keep for i in range(keep)]


def encoder_layers(model: Any) -> Any:
    """The ModuleList of a BERT-family encoder's layers (BERT, RoBERTa, ELECTRA, MiniLM)."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(
            f"cannot distil a {type(model.base_model).__name__}: only BERT-family encoders "
            "(encoder.layer) have their layers dropped"
        )
    return layers


def drop_layers(model: Any, keep: list[int]) -> Any:
    """`model` with only the encoder layers `keep` (in that order), its config saying so;
    embeddings, pooler and head untouched. Returns the same model."""
    import torch

    layers = encoder_layers(model)
    model.base_model.encoder.layer = torch.nn.ModuleList([layers[i] for i in keep])
    model.config.num_hidden_layers = len(keep)
    return model


@dataclass(frozen=True)
class Softened:
    """Training rows with the teacher's logits over them: a sequence classifier's, one row of
    `logits` per text; a classify-and-tag model's, one (tokens x labels) array per encoded
    example (a text, or a window of a sentence), in encoding order."""

    rows: LabelledTexts | TextsAndSentences
    logits: npt.NDArray[np.float32] | list[npt.NDArray[np.float32]]

    @property
    def ref(self) -> DataRef:
        return self.rows.ref

    def __len__(self) -> int:
        return len(self.rows)


class DistillationTask:
    """A classification (or classify-and-tag) task whose training loss is the temperature-
    scaled KL divergence to the teacher's softened distribution (times T^2, so its gradients
    keep their size as T grows; Hinton et al. 2015) plus `alpha` x the task's own cross-entropy
    on the gold labels.

    Everything else (metrics, epoch selection, evaluation) is the inner task's. The teacher's
    logits ride in the training labels, after the gold id (per token for classify-and-tag):
    the Trainer hands the loss only the model outputs and the labels. Validation rows carry
    gold labels alone, so their loss is the cross-entropy.
    """

    def __init__(
        self,
        inner: ClassificationTask | ClassifyAndTagTask,
        keep: list[int],
        *,
        temperature: float,
        alpha: float,
    ) -> None:
        self.inner = inner
        self.keep = list(keep)
        self.temperature = temperature
        self.alpha = alpha
        self.kind = inner.kind
        self.label_names = inner.label_names
        self.metric_for_best = inner.metric_for_best

    def build_model(self, base_model: str) -> PreTrainedModel:
        """The teacher at `base_model` (its artifact directory) with the kept layers only."""
        model: PreTrainedModel = drop_layers(self.inner.build_model(base_model), self.keep)
        return model

    @property
    def per_token(self) -> bool:
        """Whether the gold labels (and the teacher's logits) are per token."""
        return isinstance(self.inner, ClassifyAndTagTask)

    def encode(self, tokenizer: PreTrainedTokenizerBase, data: Any, max_length: int) -> Any:
        if not isinstance(data, Softened):
            return self.inner.encode(tokenizer, data, max_length)
        encoded = self.inner.encode(tokenizer, data.rows, max_length)  # type: ignore[arg-type]
        logits = data.logits

        def row(gold: Any, teacher: Any) -> list[Any]:
            if not self.per_token:
                return [float(gold), *map(float, teacher)]
            if len(gold) != len(teacher):
                raise ValueError("teacher logits were computed over another encoding")
            return [[float(g), *map(float, t)] for g, t in zip(gold, teacher, strict=True)]

        def with_teacher(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, Any]:
            golds = batch["labels"]
            return {"labels": [row(g, logits[i]) for g, i in zip(golds, indices, strict=True)]}

        return encoded.map(with_teacher, batched=True, with_indices=True)

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        """The inner task's collator; per-token labels with the teacher's logits are padded
        here ((tokens x 1+labels) each: the inner collator pads flat label lists only)."""
        base = self.inner.collator(tokenizer)
        if not self.per_token:
            return base
        left = getattr(tokenizer, "padding_side", "right") == "left"

        def collate(features: list[dict[str, Any]]) -> Any:
            import torch

            if not features or np.ndim(features[0].get("labels", 0)) < 2:
                return base(features)
            labels = [np.asarray(f["labels"], dtype=np.float32) for f in features]
            batch = base([{k: v for k, v in f.items() if k != "labels"} for f in features])
            width = batch["input_ids"].shape[1]
            padded = np.zeros((len(labels), width, labels[0].shape[1]), dtype=np.float32)
            padded[..., 0] = IGNORE_INDEX
            for i, rows in enumerate(labels):
                if left:
                    padded[i, width - len(rows) :] = rows
                else:
                    padded[i, : len(rows)] = rows
            batch["labels"] = torch.from_numpy(padded)
            return batch

        return collate

    def loss(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        if labels.dim() == (2 if self.per_token else 1):  # gold labels alone: validation
            return self.inner.loss(outputs, labels, num_items_in_batch)
        gold, teacher = labels[..., 0].long(), labels[..., 1:].float()
        student = outputs["logits"].float()
        if isinstance(self.inner, ClassifyAndTagTask):
            soft = classify_and_tag_distillation_loss(
                student, teacher, gold, self.inner.n_tags, temperature=self.temperature
            )
        else:
            soft = distillation_loss(student, teacher, temperature=self.temperature)
        return soft + self.alpha * self.inner.loss(outputs, gold, num_items_in_batch)

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        gold = np.asarray(prediction.label_ids)
        if gold.ndim == (3 if self.per_token else 2):
            gold = gold[..., 0].astype(np.int64)
        return self.inner.compute_metrics(
            EvalPrediction(predictions=prediction.predictions, label_ids=gold)
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: Any,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        return self.inner.evaluate(model, tokenizer, data, max_length=max_length, out_dir=out_dir)


def distillation_loss(student: Any, teacher: Any, *, temperature: float) -> Any:
    """T^2 x KL(teacher || student) of the distributions softened by `temperature`, averaged
    over the rows; 0 when the student's logits equal the teacher's up to a constant per row."""
    from torch.nn import functional

    t = temperature
    return (
        functional.kl_div(
            functional.log_softmax(student / t, dim=-1),
            functional.log_softmax(teacher / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        * t
        * t
    )


def classify_and_tag_distillation_loss(
    student: Any, teacher: Any, gold: Any, n_tags: int, *, temperature: float
) -> Any:
    """The distillation loss of a classify-and-tag head: over the class columns at [CLS] of
    the texts, and over the tag columns at the labelled positions of the sentences (where the
    tags are read), each softmax over its own columns as inference reads them; the mean of the
    two (of those the batch holds), as the task's own loss weighs its two tasks."""
    import torch

    is_text = gold[:, 0] >= n_tags
    losses = []
    if bool(is_text.any()):
        losses.append(
            distillation_loss(
                student[is_text, 0, n_tags:],
                teacher[is_text, 0, n_tags:],
                temperature=temperature,
            )
        )
    tagged = (~is_text)[:, None] & (gold != IGNORE_INDEX)
    if bool(tagged.any()):
        losses.append(
            distillation_loss(
                student[tagged][:, :n_tags], teacher[tagged][:, :n_tags], temperature=temperature
            )
        )
    if not losses:
        return student.sum() * 0.0
    return torch.stack(losses).mean()
