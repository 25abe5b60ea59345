"""Sentence-pair tasks on a tiny BERT: GLUE presets and TSVs, classification and regression."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from schemas import TaskKind
from training.artifact import load_artifact
from training.errors import ConfigError, DataError
from training.formats.scored import load_scored_texts
from training.pipelines.pair import PRESETS, PairConfig, train_pair
from training.trainer import Hyperparameters

SPORTS = ["game", "team", "win", "season", "coach"]
MONEY = ["market", "stock", "shares", "profit", "bank"]
HP = {
    "learning_rate": 3e-3,
    "epochs": 5,
    "batch_size": 16,
    "max_length": 32,
    "early_stopping_patience": None,
}


def pair_rows(n: int, seed: int) -> list[tuple[int, str, str]]:
    """(label, s1, s2): label 1 when the SECOND sentence is about sport, whatever the first
    says, so a model must read segment B to learn it. '"' is included: GLUE TSVs are unquoted."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = i % 2
        b = rng.choice(SPORTS if label else MONEY)
        a = rng.choice(SPORTS + MONEY)
        rows.append((label, f'the "{a}" is on', f"a {b} of the"))
    return rows


def write_mrpc(path: Path, rows: list[tuple[int, str, str]]) -> Path:
    lines = ["\ufeffQuality\t#1 ID\t#2 ID\t#1 String\t#2 String"]
    lines += [f"{label}\t{i}\t{i + 1}\t{s1}\t{s2}" for i, (label, s1, s2) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_stsb(path: Path, n: int, seed: int) -> Path:
    """Scores 4.5 when the second sentence is about sport, 0.5 otherwise."""
    lines = ["sentence1\tsentence2\tscore"]
    for label, s1, s2 in pair_rows(n, seed):
        lines.append(f"{s1}\t{s2}\t{4.5 if label else 0.5}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_presets_fill_columns_labels_and_metric_and_explicit_options_win() -> None:
    mrpc = PairConfig(data="x.tsv", task="mrpc").resolved()
    assert (mrpc.text_column, mrpc.pair_column, mrpc.label_column) == (
        "#1 String",
        "#2 String",
        "Quality",
    )
    assert mrpc.metric == "f1" and mrpc.label_names == ("not_equivalent", "equivalent")
    custom = PairConfig(data="x.tsv", task="rte", pair_column="hypothesis").resolved()
    assert custom.pair_column == "hypothesis" and custom.text_column == "sentence1"
    assert PRESETS["stsb"].regression and PRESETS["cola"].metric == "matthews_correlation"


def test_unknown_preset_or_missing_columns_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown --task 'glue'"):
        PairConfig(data="x.tsv", task="glue").resolved()
    with pytest.raises(ConfigError, match="--text-column and --label-column"):
        PairConfig(data="x.tsv").resolved()


@pytest.fixture(scope="module")
def mrpc_artifact(tmp_path_factory: pytest.TempPathFactory, tiny_base_model: Path) -> Path:
    root = tmp_path_factory.mktemp("mrpc")
    cfg = PairConfig(
        data=str(write_mrpc(root / "train.tsv", pair_rows(240, seed=0))),
        eval_data=str(write_mrpc(root / "dev.tsv", pair_rows(60, seed=1))),
        task="mrpc",
        base_model=str(tiny_base_model),
        output=root / "artifact",
        work_dir=root / "run",
        baseline=False,
        hp=Hyperparameters.model_validate(HP),
    )
    train_pair(cfg)
    return root / "artifact"


def test_mrpc_style_pair_model_records_its_pair_columns_and_glue_metrics(
    mrpc_artifact: Path,
) -> None:
    manifest = json.loads((mrpc_artifact / "manifest.json").read_text())
    assert manifest["task"] == TaskKind.PAIR_CLASSIFICATION.value
    assert manifest["labels"] == ["not_equivalent", "equivalent"]
    assert manifest["text_columns"] == ["#1 String", "#2 String"]
    test = manifest["metrics"]["test"]
    assert {"accuracy", "f1", "matthews_correlation"} <= set(test)
    assert test["rows"] == 60


def test_pair_model_learns_a_label_carried_by_the_second_sentence(mrpc_artifact: Path) -> None:
    test = json.loads((mrpc_artifact / "manifest.json").read_text())["metrics"]["test"]
    assert test["accuracy"] > 0.8, test


def test_pair_model_reads_the_pair_with_segment_ids(mrpc_artifact: Path) -> None:
    _, tokenizer, _ = load_artifact(mrpc_artifact)
    enc = tokenizer("the game is on", "a bank of the")
    assert enc["token_type_ids"].count(1) == 5  # "a bank of the" + its [SEP]
    assert enc["input_ids"].count(tokenizer.sep_token_id) == 2


def test_stsb_style_regression_reports_pearson_and_spearman(
    tmp_path: Path,
    tiny_base_model: Path,
) -> None:
    cfg = PairConfig(
        data=str(write_stsb(tmp_path / "train.tsv", 200, seed=0)),
        eval_data=str(write_stsb(tmp_path / "dev.tsv", 40, seed=1)),
        task="stsb",
        base_model=str(tiny_base_model),
        output=tmp_path / "artifact",
        # The one-output head starts near 0 and must grow to the 0.5..4.5 scores: more epochs.
        work_dir=tmp_path / "run",
        hp=Hyperparameters.model_validate({**HP, "epochs": 8}),
    )
    manifest = train_pair(cfg)
    assert manifest.labels == ["score"]
    test = manifest.metrics["test"]
    assert {"pearson", "spearman", "mse"} <= set(test)
    assert test["pearson"] > 0.5, test
    model, _, _ = load_artifact(tmp_path / "artifact")
    assert model.config.num_labels == 1 and model.config.problem_type == "regression"


def test_a_score_that_is_not_a_number_is_an_error_naming_the_row(tmp_path: Path) -> None:
    path = tmp_path / "s.tsv"
    path.write_text("sentence1\tsentence2\tscore\na\tb\t1.5\nc\td\thigh\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"1 row\(s\) have a 'score' that is not a number \(rows \[2\]\)"
    ):
        load_scored_texts(
            str(path), text_column="sentence1", score_column="score", pair_column="sentence2"
        )


def test_real_glue_tsvs_load_with_their_presets(shared_data: Path) -> None:
    from training.data import load_labelled_texts

    for task, rows in (("mrpc", 408), ("rte", 277), ("sst2", 872), ("qnli", 5463)):
        preset = PRESETS[task]
        glue = {"mrpc": "MRPC", "rte": "RTE", "sst2": "SST-2", "qnli": "QNLI"}[task]
        data = load_labelled_texts(
            str(shared_data / "glue" / glue / "dev.tsv"),
            text_columns=[preset.text_column],
            label_column=preset.label_column,
            pair_column=preset.pair_column,
            label_names=list(preset.label_names),
        )
        assert len(data) == rows, task
        assert (data.pairs is not None) == (preset.pair_column is not None)
