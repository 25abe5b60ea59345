"""Regression on one text or a text pair (STS-B similarity): a one-output head, MSE loss."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
from transformers import EvalPrediction, PreTrainedModel, PreTrainedTokenizerBase

from schemas import TaskKind
from training.evaluation import METRICS_JSON, MISCLASSIFIED_CSV
from training.formats.scored import ScoredTexts

SCORE_LABEL = "score"


def regression_scores(gold: Any, predicted: Any) -> dict[str, float]:
    """Pearson and Spearman correlation (GLUE's STS-B figures) and the mean squared error."""
    from scipy.stats import pearsonr, spearmanr

    g, p = np.asarray(gold, dtype=np.float64), np.asarray(predicted, dtype=np.float64)
    constant = len(g) < 2 or np.ptp(g) == 0 or np.ptp(p) == 0
    return {
        # A constant prediction has no correlation; report 0 rather than NaN.
        "pearson": 0.0 if constant else float(pearsonr(g, p)[0]),
        "spearman": 0.0 if constant else float(spearmanr(g, p)[0]),
        "mse": float(np.mean((g - p) ** 2)) if len(g) else 0.0,
        "rows": float(len(g)),
    }


class RegressionTask:
    """Encoder + one linear output over [CLS], trained with MSE (num_labels=1)."""

    metric_for_best = "pearson"

    def __init__(self, *, pair: bool = True) -> None:
        self.pair = pair
        self.kind = TaskKind.PAIR_CLASSIFICATION if pair else TaskKind.CLASSIFICATION
        self.label_names = [SCORE_LABEL]

    def build_model(self, base_model: str) -> PreTrainedModel:
        from transformers import AutoModelForSequenceClassification

        model: PreTrainedModel = AutoModelForSequenceClassification.from_pretrained(
            base_model,
            num_labels=1,
            problem_type="regression",
            id2label={0: SCORE_LABEL},
            label2id={SCORE_LABEL: 0},
        )
        return model

    def encode(self, tokenizer: PreTrainedTokenizerBase, data: ScoredTexts, max_length: int) -> Any:
        import datasets

        columns: dict[str, list[Any]] = {"text": data.texts, "labels": data.scores}
        if self.pair:
            columns["text_pair"] = data.pairs or []
        ds = datasets.Dataset.from_dict(columns)

        def tokenize(batch: dict[str, list[Any]]) -> Any:
            return tokenizer(
                batch["text"], batch.get("text_pair"), truncation=True, max_length=max_length
            )

        return ds.map(tokenize, batched=True, remove_columns=[c for c in columns if c != "labels"])

    def collator(self, tokenizer: PreTrainedTokenizerBase) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        return regression_scores(
            np.asarray(prediction.label_ids).reshape(-1), np.asarray(logits).reshape(-1)
        )

    def predict(
        self,
        model: Any,
        tokenizer: PreTrainedTokenizerBase,
        data: ScoredTexts,
        *,
        max_length: int,
        batch_size: int = 64,
    ) -> Any:
        import torch

        model.eval()
        device = next(model.parameters()).device
        out = np.zeros(len(data), dtype=np.float64)
        with torch.inference_mode():
            for start in range(0, len(data), batch_size):
                stop = start + batch_size
                batch = tokenizer(
                    data.texts[start:stop],
                    data.pairs[start:stop] if self.pair and data.pairs else None,
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(device)
                out[start:stop] = model(**batch).logits.float().reshape(-1).cpu().numpy()
        return out

    def evaluate(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        data: ScoredTexts,
        *,
        max_length: int,
        out_dir: Path | None,
    ) -> dict[str, Any]:
        """Pearson/Spearman/MSE; with `out_dir`, metrics.json and the rows with the largest
        errors first."""
        predicted = self.predict(model, tokenizer, data, max_length=max_length)
        metrics: dict[str, Any] = regression_scores(data.scores, predicted)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            order = np.argsort(-np.abs(np.asarray(data.scores) - predicted))
            with (out_dir / MISCLASSIFIED_CSV).open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["row", "text", "text_pair", "gold", "predicted", "error"])
                for i in order:
                    writer.writerow(
                        [
                            int(i),
                            data.texts[i],
                            data.pairs[i] if data.pairs else "",
                            data.scores[i],
                            f"{predicted[i]:.4f}",
                            f"{predicted[i] - data.scores[i]:.4f}",
                        ]
                    )
            metrics["files"] = {"errors": MISCLASSIFIED_CSV}
            (out_dir / METRICS_JSON).write_text(
                json.dumps(metrics, indent=2) + "\n", encoding="utf-8"
            )
        return metrics
