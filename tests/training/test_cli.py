"""`textroute train classify` on the command line: bad input as one clear line (never a
traceback), and the hyper-parameter flags every train command shares."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "does not exist"),
        ("text,label\na,x\nb,y\n", ["-t", "body"], "column(s) 'body' not found"),
        # A repeated -t adds a column (it once silently kept only the last one).
        ("text,label\na,x\nb,y\n", ["-t", "body", "-t", "text"], "column(s) 'body' not found"),
        ("text,label\na,x\n ,y\n", [], "empty text"),
        ("text,label\na,x\nb,x\nc,x\n", [], "one class only"),
        (
            "text,label\na,x\nb,Weather\n",
            ["--label-names", "x,y"],
            "'Weather', which is not in the label map",
        ),
    ],
    ids=[
        "missing-file",
        "missing-column",
        "repeated-column-option",
        "empty-text",
        "one-class",
        "unknown-label",
    ],
)
def test_bad_training_input_prints_clear_error_without_traceback(
    tmp_path: Path, content: str | None, args: list[str], message: str
) -> None:
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = run_cli("train", "classify", str(path), "-o", str(tmp_path / "out"), *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split())
    assert "Traceback" not in result.stderr


def test_evaluate_on_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "manifest.json").write_text("{broken", encoding="utf-8")
    result = run_cli("evaluate", str(tmp_path / "model"), "--data", str(tmp_path / "x.csv"))
    assert result.returncode == 2
    assert "ManifestInvalid" in result.stderr and "Traceback" not in result.stderr


def test_train_classify_takes_the_shared_hyperparameter_flags_into_its_training_config(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    from typer.testing import CliRunner

    from stream.cli import app
    from tests.training.conftest import make_rows, write_rows_csv

    data = write_rows_csv(tmp_path / "train.csv", make_rows(40))
    out = tmp_path / "model"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "classify",
            str(data),
            "-t",
            "title,description",
            "-o",
            str(out),
            "--base-model",
            str(tiny_base_model),
            "--work-dir",
            str(tmp_path / "run"),
            "--no-baseline",
            "--no-lexical",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--scheduler",
            "cosine",
            "--label-smoothing",
            "0.1",
        ],
    )
    assert result.exit_code == 0, result.output
    hp = json.loads((out / "training_config.json").read_text(encoding="utf-8"))["hp"]
    assert hp["scheduler"] == "cosine"
    assert (hp["label_smoothing"], hp["max_steps"], hp["max_length"]) == (0.1, 2, 32)
