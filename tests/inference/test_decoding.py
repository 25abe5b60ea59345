"""BIO decoding: the best valid tag sequence, by the shortcut when argmax is valid and by the
dynamic programme otherwise."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from inference.decoding import bio_transitions, bio_viterbi

LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG"]


def _brute_force(probs: np.ndarray) -> list[int]:
    start, allowed = bio_transitions(LABELS)
    best, best_score = None, -np.inf
    for tags in itertools.product(range(len(LABELS)), repeat=len(probs)):
        if not start[tags[0]] or not all(allowed[a, b] for a, b in itertools.pairwise(tags)):
            continue
        score = float(np.sum(np.log([probs[i, t] for i, t in enumerate(tags)])))
        if score > best_score:
            best, best_score = list(tags), score
    assert best is not None
    return best


@pytest.mark.parametrize("seed", range(40))
def test_viterbi_finds_the_most_probable_valid_sequence(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Sharp rows make argmax sequences that are often valid (the shortcut), flat ones often not.
    sharpness = 0.3 if seed % 2 else 5.0
    probs = rng.dirichlet([sharpness] * len(LABELS), size=int(rng.integers(1, 6)))
    assert bio_viterbi(probs, LABELS) == _brute_force(probs)


def test_an_invalid_argmax_sequence_is_repaired_not_returned() -> None:
    # argmax reads O, I-ORG: an I- after O is not BIO; the best valid reading opens with B-ORG.
    probs = np.array([[0.9, 0.02, 0.02, 0.04, 0.02], [0.1, 0.05, 0.05, 0.35, 0.45]])
    assert bio_viterbi(probs, LABELS) == [0, 3]


def test_a_valid_argmax_sequence_is_returned_as_is() -> None:
    probs = np.array(
        [[0.1, 0.8, 0.05, 0.03, 0.02], [0.1, 0.1, 0.7, 0.05, 0.05], [0.9, 0, 0, 0, 0.1]]
    )
    assert bio_viterbi(probs, LABELS) == [1, 2, 0]
