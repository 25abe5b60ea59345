"""The lexical expert in training: the weight chosen on validation, the artifact, the commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inference.lexical import LexicalExpert
from schemas import FileRole
from schemas.artifact import read_manifest
from tests.fixtures_artifacts import TOPICS, topic_texts
from tests.training.test_cli import run_cli
from training.data import LabelledTexts
from training.lexical import LEXICAL_FILE, attach_lexical, fit_lexical


def _rows(n: int, seed: int) -> LabelledTexts:
    texts, names = topic_texts(n, seed=seed)
    return LabelledTexts(texts, [TOPICS.index(x) for x in names], list(TOPICS))


def test_fit_keeps_the_encoder_alone_when_it_is_already_right() -> None:
    train, val = _rows(80, 1), _rows(40, 2)
    confident = np.eye(4)[val.labels] * 0.97 + 0.01
    fit = fit_lexical(train, val, confident, seed=0)
    assert fit is not None
    # Every weight ties at 100%; ties go to the smaller weight, so no expert is fused.
    assert fit.validation[0.0] == 1.0
    assert fit.weight == 0.0


def test_fit_weights_the_expert_in_when_the_encoder_knows_nothing() -> None:
    train, val = _rows(80, 1), _rows(40, 2)
    fit = fit_lexical(train, val, np.full((len(val), 4), 0.25), seed=0)
    assert fit is not None
    assert fit.weight > 0.0
    assert fit.validation[fit.weight] > fit.validation[0.0] + 0.5
    assert fit.c in (1.0, 3.0, 10.0, 30.0, 100.0)


def test_fit_leaves_a_class_with_one_row_out_of_the_cross_validation_only() -> None:
    train = _rows(80, 1)
    keep = [i for i, label in enumerate(train.labels) if label != 3] + [train.labels.index(3)]
    fit = fit_lexical(train.subset(keep), _rows(20, 2), np.full((20, 4), 0.25), seed=0)
    # It once refused the rows (after the encoder's training); the class keeps its column.
    assert fit is not None and fit.expert.log_proba(["a"]).shape == (1, 4)


@pytest.fixture(scope="module")
def weak(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    """A classifier trained a few steps only, so its words still teach it something."""
    from tests.training.conftest import topic_config
    from training.pipelines.classification import train_classifier
    from training.trainer import Hyperparameters

    root = tmp_path_factory.mktemp("weak")
    hp = Hyperparameters(learning_rate=1e-4, epochs=1, batch_size=16, max_steps=2)
    train_classifier(topic_config(root, tiny_base_model, hp=hp, baseline=False))
    return root / "artifact"


def test_training_fuses_the_expert_and_reports_encoder_and_fused_test_figures(weak: Path) -> None:
    manifest = read_manifest(weak)  # checksums verified, the expert's file included
    assert manifest.lexical is not None and manifest.lexical.file == LEXICAL_FILE
    assert manifest.file_for(FileRole.LEXICAL) is not None
    fit = manifest.metrics["lexical"]
    assert fit["validation_accuracy_fused"] > fit["validation_accuracy_encoder_only"]
    assert fit["weight"] == manifest.lexical.weight
    metrics = json.loads((weak / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= metrics["test_encoder_only"]["accuracy"]
    assert (weak / "eval" / "misclassified.csv").is_file()


def test_evaluate_scores_the_artifact_as_served_and_keeps_the_encoder_figure(
    weak: Path, tmp_path: Path
) -> None:
    from training.evaluate_classifiers import evaluate_models

    results = evaluate_models(
        [weak],
        data=str(weak.parent / "test.csv"),
        text_columns=["title", "description"],
        label_column="label",
        split=None,
        output=tmp_path / "report",
    )
    metrics = json.loads((weak / "metrics.json").read_text())
    (member,) = results.values()
    assert member["accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert member["encoder_only_accuracy"] == pytest.approx(
        metrics["test_encoder_only"]["accuracy"]
    )


def test_weight_zero_removes_an_attached_expert(weak: Path, tmp_path: Path) -> None:
    from training.lexical import LexicalFit

    root = tmp_path / "copy"
    shutil.copytree(weak, root)
    manifest = read_manifest(root)
    assert manifest.lexical is not None
    expert = LexicalExpert.load(root / LEXICAL_FILE)
    updated = attach_lexical(root, LexicalFit(expert, 0.0, 1.0, {0.0: 0.9}), manifest)
    assert updated.lexical is None
    assert updated.file_for(FileRole.LEXICAL) is None
    assert not (root / LEXICAL_FILE).exists()
    assert updated.version != manifest.version
    read_manifest(root)  # still verifies


def test_train_lexical_command_refits_from_the_artifacts_own_training_config(
    weak: Path, tmp_path: Path
) -> None:
    root = tmp_path / "refit"
    shutil.copytree(weak, root)
    before = read_manifest(root)
    done = run_cli("train", "lexical", str(root), "--no-eval")
    assert done.returncode == 0, done.stderr
    assert "lexical expert: C" in done.stderr
    after = read_manifest(root)
    assert after.version != before.version
    # The same rows, carve and seed: the same choice.
    assert after.metrics["lexical"]["weight"] == before.metrics["lexical"]["weight"]


def test_train_lexical_command_fits_a_classify_and_tag_models_classes(
    tiny_multitask_trained: Path, tmp_path: Path
) -> None:
    root = tmp_path / "multitask"
    shutil.copytree(tiny_multitask_trained, root)
    done = run_cli("train", "lexical", str(root))
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(root)
    fit = manifest.metrics["lexical"]
    assert fit["features"] > 0
    assert fit["validation_accuracy_fused"] >= fit["validation_accuracy_encoder_only"]
    # Its test figures (classes and entities) are the encoder's: evaluate scores the fusion.
    assert "test_encoder_only" not in manifest.metrics


def test_train_lexical_command_refuses_a_tagger_with_one_clear_line(
    tiny_ner_artifact: Path,
) -> None:
    done = run_cli("train", "lexical", str(tiny_ner_artifact))
    assert done.returncode != 0
    assert "token-classification model" in done.stderr
    assert "single-text classifier" in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr
