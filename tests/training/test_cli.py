"""`textroute train classify` reports bad input as one clear line, never a traceback."""

from __future__ import annotations

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
