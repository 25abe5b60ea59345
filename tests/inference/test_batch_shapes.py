"""Backend call shapes: one call per batch on a GPU, a padded-token budget, and class
probabilities turned into Classifications in one pass for the batch."""

from __future__ import annotations

import numpy as np
import pytest

from inference._encoding import Row, length_buckets
from inference._runner import classifications
from inference.backend import BackendPlan
from inference.loading import bucket_pad_ratio
from inference.settings import InferenceSettings


def _rows(lengths: list[int]) -> list[Row]:
    return [
        Row(item=i, ids=[1] * n, type_ids=[0] * n, offsets=[(0, 0)] * n, word_ids=[None] * n)
        for i, n in enumerate(lengths)
    ]


def test_without_a_pad_ratio_a_mixed_length_batch_is_one_backend_call() -> None:
    rows = _rows([5, 90, 12, 40, 128, 7])
    assert [len(b) for b in length_buckets(rows, max_batch=512, max_pad_ratio=None)] == [6]


def test_a_token_budget_cuts_a_batch_of_long_rows_into_calls_within_it() -> None:
    rows = _rows([512] * 10)
    buckets = list(length_buckets(rows, max_batch=32, max_pad_ratio=None, max_tokens=2048))
    assert [len(b) for b in buckets] == [4, 4, 2]
    assert all(len(b) * 512 <= 2048 for b in buckets)


def test_a_row_longer_than_the_budget_still_runs_alone() -> None:
    buckets = list(length_buckets(_rows([3000, 10]), max_batch=32, max_tokens=1024))
    assert [[len(_rows([3000, 10])[i].ids) for i in b] for b in buckets] == [[10], [3000]]


@pytest.mark.parametrize(
    ("device", "asked", "expected"),
    [("cpu", None, 1.1), ("cuda", None, None), ("cuda", 2.0, 2.0), ("cpu", 1.5, 1.5)],
)
def test_the_pad_ratio_is_bounded_on_cpu_and_open_on_a_gpu_unless_set(
    device: str, asked: float | None, expected: float | None
) -> None:
    plan = BackendPlan("torch", "bf16", device) if device == "cuda" else BackendPlan("onnx", "int8")
    settings = InferenceSettings(bucket_pad_ratio=asked)
    assert bucket_pad_ratio(settings, plan) == expected


def test_classifications_rank_labels_and_clip_scores_to_probabilities() -> None:
    probs = {3: np.array([0.1, 0.7, 0.2]), 5: np.array([1.0000002, 0.0, -1e-9])}
    built = classifications(probs, ["a", "b", "c"], top_k=2)
    assert built[3].label == "b" and [s.label for s in built[3].top_k] == ["b", "c"]
    assert built[5].score == 1.0 and all(0.0 <= s.score <= 1.0 for s in built[5].top_k)
    assert built[3].labels is None


def test_multi_label_classifications_list_every_label_over_its_threshold() -> None:
    built = classifications({0: np.array([0.9, 0.2, 0.6])}, ["a", "b", "c"], 1, [0.5, 0.1, 0.7])
    assert [s.label for s in built[0].labels or []] == ["a", "b"]
