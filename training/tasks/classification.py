"""Sequence classification of one text or a text pair (AG News topics, GLUE SST-2/MRPC/RTE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from schemas import Pooling, TaskKind
from training.data import LabelledTexts
from training.evaluation import predict_proba, report_classification
from training.tasks._heads import label_maps


class ClassificationTask:
    """Encoder + linear head over [CLS] (or over the mean of the tokens, `pooling="mean"`); a
    text pair is fed as [CLS] A [SEP] B [SEP]."""

    metric_for_best = "accuracy"

    def __init__(
        self,
        label_names: list[str],
        *,
        pair: bool = False,
        metric: str = "accuracy",
        pooling: Pooling = "cls",
        class_weights: list[float] | None = None,
        label_smoothing: float = 0.0,
    ):
        self.label_names = list(label_names)
        self.pair = pair
        self.kind = TaskKind.PAIR_CLASSIFICATION if pair else TaskKind.CLASSIFICATION
        self.metric_for_best = metric
        self.pooling: Pooling = pooling
        self.class_weights = class_weights
        # The Trainer smooths labels only with its own loss; this task's loss replaces it.
        self.label_smoothing = label_smoothing

    def build_model(self, base_model: str) -> PreTrainedModel:
        from inference import auto_model_class, mean_pooled

        auto = auto_model_class(self.kind, self.pooling)
        model: PreTrainedModel = auto.from_pretrained(base_model, **label_maps(self.label_names))
        return mean_pooled(model) if self.pooling == "mean" else model

    def encode(
        self, tokenizer: PreTrainedTokenizerBase, data: LabelledTexts, max_length: int
    ) -> Any:
        import datasets

        columns: dict[str, list[Any]] = {"text": data.texts, "label": data.labels}
        if self.pair:
            columns["text_pair"] = data.pairs or []
        ds = datasets.Dataset.from_dict(columns)

        def tokenize(batch: dict[str, list[Any]]) -> Any:
            return tokenizer(
                batch["text"], batch.get("text_pair"), truncation=True, max_length=max_length
            )

        encoded = ds.map(
            tokenize, batched=True, remove_columns=[c for c in columns if c != "label"]
        )
        return encoded.rename_column("label", "labels")

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def loss(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        """Cross-entropy, each row weighted by its class's weight when the task has weights
        (a rare class then counts as much as a frequent one), label smoothing as configured."""
        import torch

        logits = outputs["logits"].float()
        weight = None
        if self.class_weights is not None:
            weight = torch.tensor(self.class_weights, dtype=logits.dtype, device=logits.device)
        return torch.nn.functional.cross_entropy(
            logits, labels, weight=weight, label_smoothing=self.label_smoothing
        )

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = np.asarray(logits).argmax(axis=-1)
        gold = np.asarray(prediction.label_ids)
        return {
            "accuracy": float(accuracy_score(gold, predicted)),
            "f1_macro": float(f1_score(gold, predicted, average="macro", zero_division=0)),
            "f1": float(
                f1_score(
                    gold,
                    predicted,
                    average="binary" if len(self.label_names) == 2 else "macro",
                    zero_division=0,
                )
            ),
            "matthews_correlation": float(matthews_corrcoef(gold, predicted)),
        }

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: LabelledTexts,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        probs = predict_proba(
            model,
            tokenizer,
            data.texts,
            pairs=data.pairs if self.pair else None,
            max_length=max_length,
            progress="evaluating",
        )
        return report_classification(
            data.texts,
            data.labels,
            probs,
            self.label_names,
            out_dir,
            pairs=data.pairs if self.pair else None,
            extra=glue_metrics(data.labels, probs),
        )


def glue_metrics(gold: list[int], probs: Any) -> dict[str, float]:
    """The GLUE headline figures beside accuracy: Matthews correlation (CoLA) and, for two
    classes, the F1 of class 1 (MRPC's 'equivalent', QQP's 'duplicate')."""
    from sklearn.metrics import f1_score, matthews_corrcoef

    predicted = np.asarray(probs).argmax(axis=1)
    out = {"matthews_correlation": float(matthews_corrcoef(gold, predicted))}
    if np.asarray(probs).shape[1] == 2:
        out["f1"] = float(f1_score(gold, predicted, average="binary", zero_division=0))
    return out
