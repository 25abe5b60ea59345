"""`train classify` on a user's own export: integer codes as names, a singleton class, heavy
imbalance; every step the rows could break is checked or degraded before training."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.training.conftest import HELPDESK_COUNTS, write_helpdesk_csv
from training.data import LabelledTexts, load_labelled_texts, train_validation_split
from training.errors import UnknownLabel
from training.lexical import fit_lexical, lexical_limits
from training.trainer import Hyperparameters, epochs_for_min_steps

CODES = [str(code) for code in HELPDESK_COUNTS]


def _load(path: Path, **kwargs: Any) -> LabelledTexts:
    return load_labelled_texts(
        str(path), text_columns=["subject", "body"], label_column="category", **kwargs
    )


def test_integer_codes_are_class_names_in_numeric_order_with_no_empty_class(
    tmp_path: Path,
) -> None:
    data = _load(write_helpdesk_csv(tmp_path / "tickets.csv"))
    # Codes 1..12 once made 13 classes: an empty "0" that dragged macro-F1 down.
    assert data.label_names == CODES
    counts = np.bincount(data.labels, minlength=len(CODES))
    assert counts.tolist() == list(HELPDESK_COUNTS.values())


def test_label_names_still_name_integer_indexes(tmp_path: Path) -> None:
    path = tmp_path / "indexed.csv"
    path.write_text("text,label\na,0\nb,1\nc,1\n", encoding="utf-8")
    data = load_labelled_texts(str(path), text_columns=["text"], label_names=["neg", "pos"])
    assert data.label_names == ["neg", "pos"] and data.labels == [0, 1, 1]


def test_a_model_named_by_codes_reads_other_integers_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("text,label\na,12\nb,0\n", encoding="utf-8")
    # As `textroute evaluate` and the export gates read data for a model trained on codes.
    with pytest.raises(UnknownLabel, match="row 2 has label '0'"):
        load_labelled_texts(str(path), text_columns=["text"], label_names=CODES)


def test_singleton_class_stays_in_training_the_rest_stratified_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _load(write_helpdesk_csv(tmp_path / "tickets.csv"))
    train, val = train_validation_split(data, fraction=0.1, seed=0)
    singleton = CODES.index("12")
    assert singleton in train.labels and singleton not in val.labels
    assert len(train) + len(val) == len(data) and len(val) == math.ceil(0.1 * len(data))
    # Stratified over the others: the majority keeps its share of the validation rows.
    assert val.labels.count(0) == round(len(val) * 138 / 199)
    assert "'12' have one row only" in " ".join(capsys.readouterr().err.split())


def test_too_small_for_a_stratified_carve_falls_back_to_random_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    counts = {1: 14, 2: 2, 3: 2, 4: 2}
    data = _load(write_helpdesk_csv(tmp_path / "small.csv", counts=counts))
    train, val = train_validation_split(data, fraction=0.1, seed=0)
    assert len(val) == 2 and len(train) == 18
    assert "carving at random" in capsys.readouterr().err


def test_lexical_expert_fits_beside_a_singleton_class(tmp_path: Path) -> None:
    data = _load(write_helpdesk_csv(tmp_path / "tickets.csv"))
    train, val = train_validation_split(data, fraction=0.1, seed=0)
    assert "cross-validation without them" in lexical_limits(train)[0]
    uniform = np.full((len(val), len(CODES)), 1 / len(CODES))
    fit = fit_lexical(train, val, uniform, seed=0)
    assert fit is not None
    assert fit.expert.log_proba(["john smith mary"]).shape == (1, len(CODES))
    # The one row of '12' is fitted in after the cross-validation chose C.
    assert int(fit.expert.log_proba(["john smith mary"]).argmax()) == CODES.index("12")


def test_lexical_expert_is_skipped_not_faked_for_a_class_without_rows(tmp_path: Path) -> None:
    data = _load(write_helpdesk_csv(tmp_path / "tickets.csv"), label_names=[*CODES, "13"])
    assert "no lexical expert" in lexical_limits(data)[0]
    assert fit_lexical(data, data, np.full((len(data), 13), 1 / 13), seed=0) is None


def test_min_steps_raise_the_epochs_of_small_data(capsys: pytest.CaptureFixture[str]) -> None:
    hp = Hyperparameters(epochs=1, batch_size=32, min_steps=250)
    # 3,000 rows at 32 a batch: 94 steps an epoch, so 3 epochs reach 250 steps.
    assert epochs_for_min_steps(hp, 3000) == 3.0
    assert "--min-steps 250" in capsys.readouterr().err
    assert epochs_for_min_steps(hp, 9000) == 1.0
    assert epochs_for_min_steps(hp.model_copy(update={"max_steps": 5}), 3000) == 1.0


def test_class_weights_and_the_weighted_loss() -> None:
    import torch

    from training.pipelines.classification import class_weights
    from training.tasks.classification import ClassificationTask

    data = LabelledTexts(["a"] * 5, [0, 0, 0, 0, 1], ["big", "small", "empty"])
    balanced = class_weights(data, "balanced")
    assert balanced == pytest.approx([5 / 8, 5 / 2, 0.0])
    assert class_weights(data, "sqrt") == pytest.approx([math.sqrt(5 / 8), math.sqrt(5 / 2), 0])
    assert class_weights(data, "none") is None
    logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.tensor([0, 1])
    task = ClassificationTask(data.label_names, class_weights=balanced)
    rows = -torch.log_softmax(logits, dim=-1)[torch.arange(2), labels]
    expected = (rows[0] * 5 / 8 + rows[1] * 5 / 2) / (5 / 8 + 5 / 2)
    assert float(task.loss({"logits": logits}, labels)) == pytest.approx(float(expected))


def _config(root: Path, base_model: Path, **overrides: Any) -> Any:
    from training.pipelines.classification import ClassifyConfig

    settings: dict[str, Any] = {
        "data": str(write_helpdesk_csv(root / "train.csv")),
        "eval_data": str(write_helpdesk_csv(root / "test.csv", seed=1)),
        "text_columns": ["subject", "body"],
        "label_column": "category",
        "base_model": str(base_model),
        "output": root / "artifact",
        "work_dir": root / "run",
        "class_weight": "sqrt",
        "metric": "f1_macro",
        "pooling": "mean",
        "hp": Hyperparameters(
            learning_rate=3e-3, epochs=1, batch_size=16, min_steps=24, early_stopping_patience=None
        ),
    }
    return ClassifyConfig(**{**settings, **overrides})


def test_users_shape_trains_end_to_end_warning_before_training(
    tmp_path: Path,
    tiny_base_model: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import training.pipelines.classification as pipeline
    from schemas.artifact import read_manifest
    from training._pipeline import train_evaluate_save as real

    said_before: list[str] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        said_before.append(capsys.readouterr().err)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "train_evaluate_save", spy)
    manifest = pipeline.train_classifier(_config(tmp_path, tiny_base_model))
    before = " ".join(said_before[0].split())
    assert "'12' have one row only" in before  # the split
    assert "cross-validation without them" in before  # the expert, before the encoder run
    assert manifest.labels == CODES == read_manifest(tmp_path / "artifact").labels
    test = manifest.metrics["test"]
    assert list(test["per_class"]) == CODES  # macro figures over the 12 real classes only
    assert list(manifest.metrics["baseline"]["per_class"]) == CODES
    assert "lexical" in manifest.metrics


def test_test_code_unknown_to_training_fails_before_training(
    tmp_path: Path, tiny_base_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import training.pipelines.classification as pipeline

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training started")

    monkeypatch.setattr(pipeline, "train_evaluate_save", never)
    monkeypatch.setattr(pipeline, "train_baseline", never)
    test = tmp_path / "test0.csv"
    test.write_text("subject,body,category\nsoftware,web,0\n", encoding="utf-8")
    # "0" once read as an index into the (0..12) classes; it names no class of the data.
    with pytest.raises(UnknownLabel, match="row 1 has label '0'"):
        pipeline.train_classifier(_config(tmp_path, tiny_base_model, eval_data=str(test)))


def test_cli_refuses_a_test_code_unknown_to_training_in_one_line(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    from tests.training.test_cli import run_cli

    test = tmp_path / "test0.csv"
    test.write_text("subject,body,category\nsoftware,web,0\n", encoding="utf-8")
    result = run_cli(
        "train",
        "classify",
        str(write_helpdesk_csv(tmp_path / "train.csv")),
        *("-t", "subject,body", "--label-column", "category", "--eval-data", str(test)),
        *("--base-model", str(tiny_base_model), "-o", str(tmp_path / "out")),
        *("--work-dir", str(tmp_path / "run"), "--max-steps", "1", "--no-lexical"),
    )
    assert result.returncode == 2
    assert "has label '0', which is not in the label map" in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run").exists()  # refused before training
