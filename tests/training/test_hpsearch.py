"""`--hp-search N`: a two-trial Optuna search on the tiny BERT, its choice in the artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from schemas.artifact import read_manifest
from training.artifact import TRAINING_CONFIG_FILE

#: The Hyperparameters fields training.hpsearch.default_space searches.
SEARCHED = {"learning_rate", "epochs", "layer_decay", "warmup_ratio", "batch_size"}


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    from tests.training.conftest import topic_config
    from training.pipelines.classification import train_classifier
    from training.trainer import Hyperparameters

    root = tmp_path_factory.mktemp("hpsearch")
    # Two optimizer steps per trial and per final run keep three fine-tunes to seconds; the
    # searched fields (lr, epochs, batch size, layer decay, warmup) still vary per trial.
    hp = Hyperparameters(max_steps=2, max_length=32, early_stopping_patience=None, seed=3)
    cfg = topic_config(
        root,
        tiny_base_model,
        hp=hp,
        hp_search=2,
        limit=80,
        eval_data=None,
        baseline=False,
        lexical=False,
    )
    train_classifier(cfg)
    return root / "artifact"


def _trials(artifact: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = read_manifest(artifact).metrics["hp_search"]
    return records


def test_search_records_each_trial_with_its_params_and_validation_score(searched: Path) -> None:
    trials = _trials(searched)
    assert [t["trial"] for t in trials] == [0, 1]
    for trial in trials:
        assert set(trial["params"]) == SEARCHED
    assert all(0.0 <= t["accuracy"] <= 1.0 for t in trials)
    # Two different candidates, so "trained with the best trial's" is not trivially true.
    assert trials[0]["params"] != trials[1]["params"]


def test_search_marks_one_best_trial_and_it_has_the_top_validation_score(searched: Path) -> None:
    trials = _trials(searched)
    best = [t for t in trials if t["best"]]
    assert len(best) == 1
    assert best[0]["accuracy"] == max(t["accuracy"] for t in trials)


def test_the_artifact_records_the_best_trials_hyperparameters_as_trained_with(
    searched: Path,
) -> None:
    (best,) = [t for t in _trials(searched) if t["best"]]
    manifest = read_manifest(searched)
    stored = json.loads((searched / TRAINING_CONFIG_FILE).read_text(encoding="utf-8"))
    assert stored == manifest.training
    hp = manifest.training["hp"]
    for field, value in best["params"].items():
        assert hp[field] == pytest.approx(value), field
    # The fields the search does not touch keep the run's own values.
    assert (hp["max_steps"], hp["max_length"], hp["seed"]) == (2, 32, 3)
    assert manifest.training["hp_search"] == 2


def _stub_search(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, scores: list[float]
) -> tuple[Any, list[dict[str, Any]], list[Any]]:
    """training.hpsearch.search over len(scores) trials whose fine-tuning is stubbed: trial N
    scores scores[N] on validation. Returns the chosen hp, the records and each trial's hp."""
    from types import SimpleNamespace

    import training.hpsearch
    from training.trainer import Hyperparameters

    seen: list[Any] = []

    def fine_tune(*args: Any, work_dir: Path, hp: Any, **kwargs: Any) -> Any:
        seen.append(hp)
        trial = int(work_dir.name.removeprefix("trial-"))
        return SimpleNamespace(best_metrics={"accuracy": scores[trial]})

    monkeypatch.setattr(training.hpsearch, "fine_tune", fine_tune)
    chosen, records = training.hpsearch.search(
        SimpleNamespace(metric_for_best="accuracy"),
        None,
        None,
        base_model="unused",
        work_dir=tmp_path,
        base=Hyperparameters(max_steps=7, seed=5),
        trials=len(scores),
    )
    return chosen, records, seen


def test_search_chooses_the_top_scoring_trial_not_the_first_or_the_last(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen, records, seen = _stub_search(monkeypatch, tmp_path, [0.50, 0.90, 0.70])
    assert [(r["trial"], r["accuracy"], r["best"]) for r in records] == [
        (0, 0.50, False),
        (1, 0.90, True),
        (2, 0.70, False),
    ]
    assert chosen == seen[1]  # exactly the hyperparameters the best trial trained with
    assert chosen.model_dump(include=SEARCHED) == pytest.approx(records[1]["params"])
    assert (chosen.max_steps, chosen.seed) == (7, 5)


def test_search_on_tied_scores_trains_with_the_trial_it_marks_best(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chosen, records, seen = _stub_search(monkeypatch, tmp_path, [0.25, 0.25])
    (best,) = [r for r in records if r["best"]]
    assert chosen == seen[best["trial"]]
    assert seen[0] != seen[1]
