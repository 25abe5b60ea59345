"""Ensemble votes with members that disagree: soft, majority and NER mean-probability."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures_artifacts import NER_LABELS, TOPICS
from training.evaluation import FloatArray, classification_metrics, majority_vote, soft_vote

# Columns follow the tiny classifier's labels: World, Sports, Business, Sci/Tech.
WORLD, SPORTS, BUSINESS = TOPICS.index("World"), TOPICS.index("Sports"), TOPICS.index("Business")

# MEMBERS[member][row]: three members, three rows, built so the four candidate answers differ:
#   row 0: members 1 and 2 narrowly prefer World, member 3 is sure of Sports;
#   row 1: the same with member 1 as the sure one;
#   row 2: a three-way split (World, Business, Sports) where member 2 is sure of Business.
MEMBERS = np.array(
    [
        [[0.50, 0.45, 0.05, 0.0], [0.02, 0.96, 0.02, 0.0], [0.50, 0.30, 0.20, 0.0]],
        [[0.50, 0.45, 0.05, 0.0], [0.50, 0.45, 0.05, 0.0], [0.05, 0.05, 0.90, 0.0]],
        [[0.02, 0.96, 0.02, 0.0], [0.50, 0.45, 0.05, 0.0], [0.25, 0.45, 0.30, 0.0]],
    ]
)
SOFT = [SPORTS, SPORTS, BUSINESS]  # the confident member outweighs two lukewarm ones
MAJORITY = [WORLD, WORLD, BUSINESS]  # two votes win; the 1-1-1 split goes to the higher mean
FIRST = [WORLD, SPORTS, WORLD]
LAST = [SPORTS, WORLD, SPORTS]


def members() -> list[FloatArray]:
    """Fresh copies of MEMBERS, one array per member, as the ensemble code receives them."""
    return [m.copy() for m in MEMBERS]


def test_the_four_candidate_answers_differ_so_the_vote_tests_can_tell_them_apart() -> None:
    answers = {tuple(a) for a in (SOFT, MAJORITY, FIRST, LAST)}
    assert len(answers) == 4
    assert MEMBERS[0].argmax(axis=1).tolist() == FIRST
    assert MEMBERS[-1].argmax(axis=1).tolist() == LAST


def test_soft_vote_averages_so_one_confident_member_outweighs_two_lukewarm_ones() -> None:
    combined = soft_vote(members())
    np.testing.assert_allclose(combined, MEMBERS.mean(axis=0))
    np.testing.assert_allclose(combined[0], [0.34, 0.62, 0.04, 0.0])
    assert combined.argmax(axis=1).tolist() == SOFT


def test_majority_vote_counts_argmaxes_so_two_lukewarm_members_outvote_one_sure() -> None:
    combined = majority_vote(members())
    assert combined.argmax(axis=1).tolist() == MAJORITY
    # The scores are vote shares (plus a tie-break far below one vote).
    np.testing.assert_allclose(
        combined,
        [[2 / 3, 1 / 3, 0, 0], [2 / 3, 1 / 3, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0]],
        atol=1e-5,
    )


def test_majority_vote_gives_a_tied_count_to_the_higher_mean_not_the_lower_class_index() -> None:
    # Row 2 is a 1-1-1 split; Business has the higher mean probability but the highest index
    # of the three, so a plain argmax over the vote counts would say World.
    row = [m[2:3] for m in members()]
    assert majority_vote(row).argmax(axis=1).tolist() == [BUSINESS]


def test_with_five_members_soft_majority_first_and_last_each_pick_a_different_class() -> None:
    lukewarm = [0.36, 0.34, 0.15, 0.15]  # three members: World, narrowly over Sports
    five = [
        np.array([[0.01, 0.48, 0.50, 0.01]]),  # first: Business, Sports close behind
        *(np.array([lukewarm]) for _ in range(3)),
        np.array([[0.01, 0.48, 0.01, 0.50]]),  # last: Sci/Tech, Sports close behind
    ]
    assert soft_vote(five).argmax(axis=1).tolist() == [SPORTS]
    assert majority_vote(five).argmax(axis=1).tolist() == [WORLD]
    assert [five[0].argmax(), five[-1].argmax()] == [BUSINESS, TOPICS.index("Sci/Tech")]


def _fake_member_probs(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Replace `module.name` (a member's probabilities) by MEMBERS, one member per call;
    returns the positional arguments of each call."""
    calls: list[Any] = []
    queue: Iterator[Any] = iter(members())

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return next(queue)

    monkeypatch.setattr(module, name, fake)
    return calls


def test_evaluate_reports_each_vote_as_its_own_combination_of_disagreeing_members(
    tiny_classifier_trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.evaluate_classifiers
    from training.evaluate_classifiers import evaluate_models

    # Real artifacts and reporting; only the members' probabilities are set by hand, so the
    # members disagree as MEMBERS does (three copies of one model would always agree).
    calls = _fake_member_probs(monkeypatch, training.evaluate_classifiers, "predict_proba")
    gold = [SPORTS, SPORTS, BUSINESS]
    data = tmp_path / "rows.csv"
    data.write_text(
        "text,label\n" + "".join(f"row {i},{TOPICS[g]}\n" for i, g in enumerate(gold)),
        encoding="utf-8",
    )
    results = evaluate_models(
        [tiny_classifier_trained] * 3,
        data=str(data),
        text_columns=["text"],
        label_column="label",
        split=None,
        output=tmp_path / "ev",
    )
    assert [call[2] for call in calls] == [["row 0", "row 1", "row 2"]] * 3

    def figures(metrics: dict[str, Any]) -> dict[str, Any]:
        return {k: metrics[k] for k in ("accuracy", "f1_macro", "per_class")}

    expected = {
        "ensemble-soft": SOFT,
        "ensemble-majority": MAJORITY,
        "tiny-classifier": FIRST,
        "tiny-classifier-3": LAST,
    }
    reports = {k: figures(classification_metrics(gold, p, TOPICS)) for k, p in expected.items()}
    # Each of the four answers scores differently on these rows, so a swap cannot hide.
    assert len({json.dumps(r, sort_keys=True) for r in reports.values()}) == 4
    for key, report in reports.items():
        assert figures(results[key]) == report, key
    assert results["ensemble-soft"]["accuracy"] == 1.0
    assert results["ensemble-majority"]["accuracy"] == pytest.approx(1 / 3)


# NER: each member's per-word tag probabilities for "john visited paris" and "mary said".
def _word(**probs: float) -> list[float]:
    """One word's row over NER_LABELS: the given tags (B_PER for B-PER), the rest spread."""
    given = {k.replace("_", "-"): v for k, v in probs.items()}
    rest = (1.0 - sum(given.values())) / (len(NER_LABELS) - len(given))
    return [given.get(tag, rest) for tag in NER_LABELS]


NER_SENTENCES = [["john", "visited", "paris"], ["mary", "said"]]
NER_GOLD = [["B-PER", "O", "B-LOC"], ["B-PER", "O"]]
# Member 1 is sure of the person and narrowly misses the place; member 3 the other way round;
# member 2 narrowly misses both. The mean finds both; a per-word vote or either end member not.
NER_MEMBERS = [
    [
        np.array([_word(B_PER=0.90), _word(O=0.90), _word(O=0.50, B_LOC=0.44)]),
        np.array([_word(B_PER=0.90), _word(O=0.90)]),
    ],
    [
        np.array([_word(O=0.50, B_PER=0.44), _word(O=0.90), _word(O=0.50, B_LOC=0.44)]),
        np.array([_word(O=0.50, B_PER=0.44), _word(O=0.90)]),
    ],
    [
        np.array([_word(O=0.50, B_PER=0.44), _word(O=0.90), _word(B_LOC=0.90)]),
        np.array([_word(O=0.50, B_PER=0.44), _word(O=0.90)]),
    ],
]


def _argmax_tags(probs: list[Any]) -> list[list[str]]:
    return [[NER_LABELS[t] for t in p.argmax(axis=1)] for p in probs]


def test_ner_ensemble_means_each_sentences_word_probabilities_across_members() -> None:
    from training.evaluate_ner import mean_word_probs

    mean = mean_word_probs(NER_MEMBERS)
    assert [p.shape for p in mean] == [(3, len(NER_LABELS)), (2, len(NER_LABELS))]
    for sentence, combined in enumerate(mean):
        expected = np.mean([member[sentence] for member in NER_MEMBERS], axis=0)
        np.testing.assert_allclose(combined, expected)
    assert _argmax_tags(mean) == NER_GOLD
    assert _argmax_tags(NER_MEMBERS[0]) == [["B-PER", "O", "O"], ["B-PER", "O"]]
    assert _argmax_tags(NER_MEMBERS[-1]) == [["O", "O", "B-LOC"], ["O", "O"]]


def test_evaluate_taggers_scores_the_mean_of_disagreeing_members_not_one_member(
    tiny_ner_trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.evaluate_ner import ENSEMBLE, evaluate_taggers
    from training.tasks.token_classification import TokenClassificationTask

    queue = iter(NER_MEMBERS)

    def fake(self: Any, model: Any, tokenizer: Any, tokens: Any, **kwargs: Any) -> Any:
        assert tokens == NER_SENTENCES
        return [p.copy() for p in next(queue)]

    monkeypatch.setattr(TokenClassificationTask, "predict_word_probs", fake)
    data = tmp_path / "test.txt"
    lines = ["-DOCSTART- -X- -X- O", ""]
    for words, tags in zip(NER_SENTENCES, NER_GOLD, strict=True):
        lines += [f"{w} NN O {t}" for w, t in zip(words, tags, strict=True)] + [""]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")

    results = evaluate_taggers(
        [tiny_ner_trained] * 3, data=str(data), split=None, output=tmp_path / "ev"
    )
    assert results[ENSEMBLE]["f1"] == 1.0
    first, last = results["tiny-ner"], results["tiny-ner-3"]
    # First member: both people, no place; last member: the place, no person.
    assert first["per_type"]["PER"]["recall"] == 1.0
    assert first["per_type"]["LOC"]["recall"] == 0.0
    assert last["per_type"]["PER"]["recall"] == 0.0
    assert last["per_type"]["LOC"]["recall"] == 1.0
    assert first["f1"] == pytest.approx(0.8)
    assert last["f1"] == pytest.approx(0.5)
