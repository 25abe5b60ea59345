"""`textroute train ner|qa|pair` on the command line: flags, defaults, a real quick run."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from stream.cli import app
from tests.training.test_ner import make_sentences, write_conll


def test_task_commands_are_registered_with_their_own_defaults() -> None:
    runner = CliRunner()
    for command, default in (("ner", "0.0001"), ("qa", "384"), ("pair", "5e-05")):
        result = runner.invoke(app, ["train", command, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "--max-steps" in result.output and default in result.output, command
    assert CliRunner().invoke(app, ["answer", "--help"]).exit_code == 0


def test_train_ner_command_writes_a_token_classification_artifact(
    tmp_path: Path, tiny_base_model: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_conll(data / "train.txt", make_sentences(40, seed=0))
    write_conll(data / "valid.txt", make_sentences(10, seed=1))
    out = tmp_path / "models" / "ner"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "ner",
            str(data),
            "--output",
            str(out),
            "--base-model",
            str(tiny_base_model),
            "--work-dir",
            str(tmp_path / "run"),
            "--limit",
            "30",
            "--epochs",
            "1",
            "--max-steps",
            "3",
            "--batch-size",
            "8",
            "--max-length",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["task"] == "token-classification"
    assert manifest["train_data"]["rows"] == 30
    assert manifest["training"]["hp"]["max_steps"] == 3
    assert "validation" in manifest["metrics"] and "test" not in manifest["metrics"]


def test_train_ner_command_reports_a_malformed_file_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("John B-PER\nSmith\n", encoding="utf-8")
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "train", "ner", str(bad)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    message = " ".join(proc.stderr.split())  # rich wraps long lines
    assert proc.returncode == 2
    assert "DataError" in message and "bad.txt:2 has 1 column" in message
    assert "Traceback" not in message
