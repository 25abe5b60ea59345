"""The TF-IDF + Naive Bayes baseline's figures, on rows whose answer is known by construction."""

from __future__ import annotations

import re
from itertools import combinations

import numpy as np
import pytest

from schemas import DataRef
from tests.training.conftest import tfidf_nb_pipeline
from training.baseline import ALPHAS, train_baseline
from training.data import LabelledTexts

LABELS = ["sport", "money", "tech"]
WORDS = {
    "sport": ["game", "team", "win", "season", "coach", "player"],
    "money": ["market", "stock", "shares", "profit", "bank", "price"],
    "tech": ["software", "internet", "computer", "space", "chip", "web"],
}
FILLER = ["the", "a", "of", "on"]


def rows(label: str, count: int, *, skip: int = 0) -> list[str]:
    """`count` texts of three of `label`'s words (distinct triples, from the `skip`th on); every
    other text repeats its first word, so term frequency (sublinear or not) counts."""
    triples = list(combinations(WORDS[label], 3))[skip : skip + count]
    return [" ".join([FILLER[i % len(FILLER)], *t[: i % 2], *t]) for i, t in enumerate(triples)]


def split(texts: dict[str, list[str]], name: str, extra: list[tuple[str, str]]) -> LabelledTexts:
    """Rows of each label's `texts`, then the `extra` (text, label) rows."""
    pairs = [(t, label) for label in LABELS for t in texts[label]] + extra
    return LabelledTexts(
        texts=[t for t, _ in pairs],
        labels=[LABELS.index(label) for _, label in pairs],
        label_names=LABELS,
        ref=DataRef(source="memory", split=name),
    )


# Every text's words belong to one label only, so the classes separate perfectly, except for
# the last test row: labelled sport, written in money words, so every model calls it money;
# and one validation row on the boundary, which only alpha <= 0.1 calls money: the
# smoothing choice then shows in the validation score.
TRAIN = split({k: rows(k, 10) for k in LABELS}, "train", [])
VAL = split({k: rows(k, 3, skip=10) for k in LABELS}, "validation", [("game stock", "money")])
MISLEADING = ("market stock profit", "sport")
TEST = split({k: rows(k, 4, skip=13) for k in LABELS}, "test", [MISLEADING])


def test_baseline_scores_the_known_answer_on_test_one_misleading_row_wrong() -> None:
    metrics = train_baseline(TRAIN, VAL, TEST).metrics
    # 13 rows, only the misleading one wrong: sport recall 4/5, money precision 4/5.
    assert metrics["rows"] == 13
    assert metrics["accuracy"] == pytest.approx(12 / 13)
    assert metrics["precision_macro"] == pytest.approx((1 + 4 / 5 + 1) / 3)
    assert metrics["recall_macro"] == pytest.approx((4 / 5 + 1 + 1) / 3)
    assert metrics["f1_macro"] == pytest.approx((8 / 9 + 8 / 9 + 1) / 3)
    assert metrics["per_class"]["money"]["precision"] == pytest.approx(4 / 5)
    assert metrics["per_class"]["sport"]["recall"] == pytest.approx(4 / 5)
    assert metrics["evaluated_on"] == "test"


def test_baseline_figures_equal_what_scikit_learn_computes_for_the_same_pipeline() -> None:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    result = train_baseline(TRAIN, VAL, TEST)
    metrics = result.metrics
    validation = {
        a: tfidf_nb_pipeline(a).fit(TRAIN.texts, TRAIN.labels).score(VAL.texts, VAL.labels)
        for a in ALPHAS
    }
    # Alpha is chosen on validation: the reported one scores the best there, which the
    # boundary row makes more than any alpha (1.0 misses it).
    assert metrics["alpha"] == result.alpha in ALPHAS
    assert metrics["validation_accuracy"] == validation[result.alpha] == max(validation.values())
    assert validation[1.0] < validation[result.alpha]
    direct = tfidf_nb_pipeline(result.alpha).fit(TRAIN.texts, TRAIN.labels)
    # Same features and smoothing, not just the same answers on these easy rows.
    np.testing.assert_allclose(
        result.model.predict_proba(TEST.texts), direct.predict_proba(TEST.texts)
    )
    predicted = direct.predict(TEST.texts)
    gold = TEST.labels
    assert metrics["accuracy"] == pytest.approx(accuracy_score(gold, predicted))
    assert metrics["f1_macro"] == pytest.approx(f1_score(gold, predicted, average="macro"))
    assert metrics["precision_macro"] == pytest.approx(
        precision_score(gold, predicted, average="macro")
    )
    assert metrics["recall_macro"] == pytest.approx(recall_score(gold, predicted, average="macro"))


def test_baseline_without_test_data_reports_on_validation() -> None:
    metrics = train_baseline(TRAIN, VAL).metrics
    assert metrics["evaluated_on"] == "validation"
    assert (metrics["rows"], metrics["accuracy"], metrics["f1_macro"]) == (10, 1.0, 1.0)


def test_training_summary_sets_the_model_row_above_the_baseline_row_it_beats(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.cli import print_summary

    monkeypatch.setenv("COLUMNS", "200")  # one table row per line
    headline = ("accuracy", "precision_macro", "recall_macro", "f1_macro")
    baseline = train_baseline(TRAIN, VAL, TEST).metrics
    model = dict(zip(headline, (1.0, 1.0, 1.0, 1.0), strict=True))
    print_summary({"validation": model, "test": model, "baseline": baseline}, title="run")
    rows = {
        (cells[0], cells[1]): [float(c) for c in cells[2:]]
        for line in capsys.readouterr().out.splitlines()
        if len(cells := [c.strip() for c in re.split(r"[│|]", line)[1:-1]]) == 6
        and cells[0] != "model"
    }
    assert rows[("fine-tuned", "test")] == [100.0] * 4
    assert rows[("tfidf+nb", "test")] == [round(100 * baseline[k], 2) for k in headline]
    # The comparison reads the right way round: the perfect model above the 12/13 baseline.
    assert rows[("fine-tuned", "test")][0] > rows[("tfidf+nb", "test")][0] == 92.31
