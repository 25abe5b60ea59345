"""Multi-label classification: one sigmoid per label, binary cross-entropy, per-label thresholds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from schemas import Pooling, TaskKind
from training.formats.labelsets import LabelSets
from training.multilabel_metrics import report_multilabel, sigmoid
from training.tasks._heads import label_maps

#: The checkpoint choice reads F1 at 0.5: the tuned thresholds do not exist yet while training.
QUICK_THRESHOLD = 0.5


class MultiLabelTask:
    """Encoder + linear head over [CLS] (or the mean of the tokens) with one independent sigmoid
    per label; the loss is the binary cross-entropy of every label (HF's multi-label problem
    type). `thresholds` (one per label) turn probabilities into label sets in `evaluate`; until
    they are tuned, every label is read at 0.5."""

    kind = TaskKind.MULTI_LABEL
    metric_for_best = "f1_micro"

    def __init__(self, label_names: list[str], *, pooling: Pooling = "cls") -> None:
        self.label_names = list(label_names)
        self.pooling: Pooling = pooling
        self.thresholds: list[float] = [QUICK_THRESHOLD] * len(self.label_names)

    def build_model(self, base_model: str) -> PreTrainedModel:
        from inference import auto_model_class, mean_pooled

        auto = auto_model_class(self.kind, self.pooling)
        model: PreTrainedModel = auto.from_pretrained(
            base_model,
            problem_type="multi_label_classification",
            **label_maps(self.label_names),
        )
        return mean_pooled(model) if self.pooling == "mean" else model

    def encode(self, tokenizer: PreTrainedTokenizerBase, data: LabelSets, max_length: int) -> Any:
        import datasets

        targets = data.indicator().astype(np.float32).tolist()
        ds = datasets.Dataset.from_dict({"text": data.texts, "labels": targets})

        def tokenize(batch: dict[str, list[Any]]) -> Any:
            return tokenizer(batch["text"], truncation=True, max_length=max_length)

        return ds.map(tokenize, batched=True, remove_columns=["text"])

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def loss(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        """Mean binary cross-entropy over the batch's rows and labels. Computed here, not by
        the model, so the mean-pooled head (whose forward knows only softmax) trains alike."""
        from torch.nn import functional

        logits = outputs["logits"]
        return functional.binary_cross_entropy_with_logits(
            logits.float(), labels.to(logits.dtype).float()
        )

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        from sklearn.metrics import f1_score

        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = (sigmoid(logits) >= QUICK_THRESHOLD).astype(np.int64)
        gold = np.asarray(prediction.label_ids).astype(np.int64)
        return {
            "f1_micro": float(f1_score(gold, predicted, average="micro", zero_division=0)),
            "f1_macro": float(f1_score(gold, predicted, average="macro", zero_division=0)),
        }

    def probabilities(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: LabelSets,
        *,
        max_length: int,
        progress: str | None = None,
    ) -> np.ndarray:
        """(rows, labels) sigmoid probabilities of the first `max_length` tokens of each text."""
        from training.evaluation import predict_proba

        return predict_proba(
            model, tokenizer, data.texts, max_length=max_length, progress=progress, multi_label=True
        )

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: LabelSets,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        probs = self.probabilities(model, tokenizer, data, max_length=max_length, progress="eval")
        return report_multilabel(
            data.texts, data.indicator(), probs, self.thresholds, self.label_names, out_dir
        )
