"""`textroute train multilabel`: the three label layouts, an empty label set as one clear line,
thresholds tuned on validation, the figures on a hand-made case, the export's micro-F1 gate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from schemas import TaskKind
from schemas.artifact import read_manifest
from training.formats.labelsets import load_label_sets
from training.multilabel_metrics import decide, multilabel_metrics, sigmoid, tune_thresholds
from training.tiny import TOPICS, build_tiny_multilabel, multilabel_texts, write_multilabel_data


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal, so a one-line message is not wrapped by the console.
    env = {**os.environ, "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


_LAYOUTS = {
    "list": ("data.jsonl", []),
    "separated": ("data.csv", ["--label-separator", "|"]),
    "columns": ("data.csv", ["--label-columns", ",".join(TOPICS)]),
}


@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_label_sets_read_alike_from_lists_separated_strings_and_zero_one_columns(
    tmp_path: Path, layout: str
) -> None:
    name, _ = _LAYOUTS[layout]
    path = write_multilabel_data(tmp_path / name, 20, seed=0, layout=layout)
    options: dict[str, dict[str, Any]] = {
        "list": {},
        "separated": {"label_separator": "|"},
        "columns": {"label_columns": TOPICS},
    }
    data = load_label_sets(str(path), text_columns=["text"], label_names=TOPICS, **options[layout])
    _, expected = multilabel_texts(20, seed=0)
    assert [[TOPICS[j] for j in row] for row in data.labels] == expected
    assert data.indicator().sum(axis=1).tolist() == [len(s) for s in expected]


@pytest.mark.parametrize("layout", list(_LAYOUTS))
def test_train_multilabel_cli_trains_from_each_label_layout(
    tmp_path: Path, tiny_base_model: Path, layout: str
) -> None:
    name, options = _LAYOUTS[layout]
    data = write_multilabel_data(tmp_path / name, 96, seed=0, layout=layout)
    test = write_multilabel_data(tmp_path / f"test-{name}", 32, seed=1, layout=layout)
    out = tmp_path / "model"
    result = run_cli(
        "train", "multilabel", str(data), "--eval-data", str(test), *options,
        "--base-model", str(tiny_base_model), "-o", str(out), "--work-dir", str(tmp_path / "run"),
        "--max-steps", "6", "--max-length", "32", "--batch-size", "16", "--no-lexical",
        *(["--no-baseline"] if layout != "list" else []),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = read_manifest(out)
    assert manifest.task is TaskKind.MULTI_LABEL
    assert sorted(manifest.labels) == sorted(TOPICS)
    assert manifest.thresholds is not None and len(manifest.thresholds) == len(TOPICS)
    test_metrics = manifest.metrics["test"]
    for key in ("f1_micro", "f1_macro", "f1_samples", "subset_accuracy", "hamming_loss"):
        assert 0.0 <= test_metrics[key] <= 1.0
    assert set(test_metrics["per_label"]) == set(TOPICS)
    assert ("baseline" in manifest.metrics) == (layout == "list")
    assert (out / "eval" / "metrics.json").is_file()


@pytest.mark.parametrize(
    ("layout", "content", "options"),
    [
        ("list", '{"text": "a game", "labels": ["Sports"]}\n{"text": "a bank", "labels": []}\n',
         []),
        ("separated", "text,labels\na game,Sports\na bank,\n", ["--label-separator", "|"]),
        ("columns", "text,Sports,World\na game,1,0\na bank,0,0\n",
         ["--label-columns", "Sports,World"]),
    ],
)  # fmt: skip
def test_a_row_without_labels_exits_2_with_one_line_naming_the_row(
    tmp_path: Path, layout: str, content: str, options: list[str]
) -> None:
    path = tmp_path / ("data.jsonl" if layout == "list" else "data.csv")
    path.write_text(content, encoding="utf-8")
    result = run_cli("train", "multilabel", str(path), "-o", str(tmp_path / "out"), *options)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "EmptyLabels" in lines[0] and "1 row(s) have no label" in lines[0]
    assert "rows 2" in lines[0]
    assert "Traceback" not in result.stderr


def test_multilabel_metrics_on_a_hand_made_case() -> None:
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    pred = np.array([[1, 0, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    m = multilabel_metrics(gold, pred, ["a", "b", "c"])
    # tp 4, fp 1, fn 2 -> micro P 4/5, R 4/6, F1 8/11.
    assert m["precision_micro"] == pytest.approx(0.8)
    assert m["recall_micro"] == pytest.approx(4 / 6)
    assert m["f1_micro"] == pytest.approx(8 / 11)
    # a: P 1 R 1; b: P 1 R 1; c: tp 0 -> F1 0; macro F1 = 2/3.
    assert m["per_label"]["a"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 2}
    assert m["per_label"]["c"]["f1"] == 0.0 and m["per_label"]["c"]["support"] == 2
    assert m["f1_macro"] == pytest.approx(2 / 3)
    # Rows: F1 2/3, 2/3, 1, 0 -> samples F1 7/12; only row 3 matches exactly.
    assert m["f1_samples"] == pytest.approx((2 / 3 + 2 / 3 + 1 + 0) / 4)
    assert m["subset_accuracy"] == pytest.approx(0.25)
    # 3 of the 12 decisions are wrong.
    assert m["hamming_loss"] == pytest.approx(3 / 12)


def test_thresholds_tuned_per_label_and_global_for_labels_with_few_positives() -> None:
    rng = np.random.default_rng(0)
    n = 200
    gold = np.zeros((n, 3), dtype=np.int64)
    gold[:100, 0] = 1  # label 0: positives score 0.3-0.4, negatives below 0.2
    gold[:60, 1] = 1  # label 1: positives 0.8-0.9, negatives 0.6-0.7
    gold[0, 2] = 1  # label 2: one positive only
    probs = np.zeros((n, 3))
    probs[:, 0] = np.where(gold[:, 0] == 1, rng.uniform(0.3, 0.4, n), rng.uniform(0.0, 0.2, n))
    probs[:, 1] = np.where(gold[:, 1] == 1, rng.uniform(0.8, 0.9, n), rng.uniform(0.6, 0.7, n))
    probs[:, 2] = rng.uniform(0.0, 0.1, n)
    chosen = tune_thresholds(probs, gold, min_positives=5)
    assert 0.2 < chosen.values[0] <= 0.3
    assert 0.7 < chosen.values[1] <= 0.8
    assert chosen.tuned == [True, True, False]
    assert chosen.values[2] == chosen.global_threshold
    assert all(0.0 < t < 1.0 for t in chosen.values)
    assert (decide(probs, chosen.values)[:, :2] == gold[:, :2]).all()


def test_the_shared_threshold_of_rare_labels_is_tuned_on_them_not_on_the_frequent_ones() -> None:
    rng = np.random.default_rng(1)
    n = 400
    gold = np.zeros((n, 6), dtype=np.int64)
    probs = np.zeros((n, 6))
    # A frequent label scored low (its best cut is about 0.1): it must not set the rare ones'.
    gold[:200, 0] = 1
    probs[:, 0] = np.where(gold[:, 0] == 1, rng.uniform(0.08, 0.15, n), rng.uniform(0.0, 0.05, n))
    # Five rare labels, two positives each, scored 0.6-0.7 among negatives at 0.2-0.5.
    for j in range(1, 6):
        gold[2 * j : 2 * j + 2, j] = 1
        probs[:, j] = np.where(gold[:, j] == 1, rng.uniform(0.6, 0.7, n), rng.uniform(0.2, 0.5, n))
    chosen = tune_thresholds(probs, gold, min_positives=5)
    assert chosen.tuned == [True, False, False, False, False, False]
    assert chosen.values[0] < 0.2
    assert 0.5 < chosen.global_threshold <= 0.6, "from the rare labels' own scores"
    assert (decide(probs, chosen.values) == gold).all()


def test_rare_labels_with_too_few_positives_even_together_keep_the_default_threshold() -> None:
    gold = np.zeros((50, 3), dtype=np.int64)
    gold[:25, 0] = 1
    gold[0, 1] = 1
    probs = np.where(gold == 1, 0.9, 0.1)
    chosen = tune_thresholds(probs, gold, min_positives=5)
    assert chosen.tuned == [True, False, False]
    assert chosen.global_threshold == 0.5


def test_sigmoid_is_stable_for_large_logits() -> None:
    assert sigmoid(np.array([-1000.0, 0.0, 1000.0])).tolist() == [0.0, 0.5, 1.0]


def test_export_gates_a_multilabel_model_on_micro_f1(tmp_path: Path) -> None:
    from training.export import EvalSample, export_artifact

    root = build_tiny_multilabel(tmp_path / "model")
    texts, sets = multilabel_texts(96, seed=5)
    sample = EvalSample(
        source="generated", texts=texts, label_sets=[[TOPICS.index(t) for t in s] for s in sets]
    )
    report = export_artifact(root, eval_data=sample)
    assert report.passed
    assert report.parity is not None and report.parity.metric == "f1_micro"
    assert report.parity.metric_fp32 is not None and report.parity.metric_fp32 > 0.8
    gate = next(g for g in report.gates if g.name.startswith("f1_micro_drop_points"))
    assert gate.limit == 0.5
    files = {f.role.value for f in read_manifest(root).files}
    assert {"onnx-fp32", "onnx-int8"} <= files


def test_micro_f1_gate_fails_a_drop_above_half_a_point() -> None:
    from training.export.gates import evaluate_gates
    from training.export.report import ParityFigures
    from training.export.settings import GateSettings

    figures = ParityFigures(
        samples=100,
        data_source="memory",
        max_logit_diff=1e-5,
        argmax_agreement=1.0,
        metric="f1_micro",
        metric_torch=0.90,
        metric_fp32=0.90,
        metric_int8=0.894,
    )
    (gate,) = [g for g in evaluate_gates(figures, GateSettings()) if "f1_micro" in g.name]
    assert not gate.passed
    assert gate.value == pytest.approx(0.6) and gate.limit == 0.5


def test_export_reads_multilabel_gate_data_as_the_model_was_trained_to(tmp_path: Path) -> None:
    from training.export.sample import load_eval_sample

    root = build_tiny_multilabel(tmp_path / "model")
    data = write_multilabel_data(tmp_path / "gate.csv", 12, seed=3, layout="separated")
    manifest = read_manifest(root)
    trained_with = {**manifest.training, "label_column": "labels", "label_separator": "|"}
    sample = load_eval_sample(data, manifest.model_copy(update={"training": trained_with}))
    _, expected = multilabel_texts(12, seed=3)
    assert sample.label_sets == [[TOPICS.index(t) for t in s] for s in expected]
    shutil.rmtree(root)
    json.dumps(sample.model_dump())  # plain data, as the export report records it
