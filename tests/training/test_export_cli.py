"""`textroute export`: gates from a CSV, --no-gates, and a clear one-line failure."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import typer
from typer.testing import CliRunner

from schemas import FileRole
from schemas.artifact import read_manifest
from tests.fixtures_artifacts import topic_texts
from training.export.cli import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps typer from collapsing the group
        """Nothing."""

    return app


def test_export_command_gates_on_a_csv_and_prints_the_figures(
    tiny_classifier_trained: Path, tmp_path: Path
) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_classifier_trained, art)
    texts, labels = topic_texts(40, seed=5)
    data = tmp_path / "eval.csv"
    data.write_text(
        "text,label\n" + "".join(f"{t},{lab}\n" for t, lab in zip(texts, labels, strict=True)),
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        _app(), ["export", str(art), "--data", str(data), "--sample", "32"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    assert "accuracy_drop_points" in result.output
    assert "PASS" in result.output and "FAIL" not in result.output
    assert read_manifest(art).file_for(FileRole.ONNX_INT8) is not None


def test_export_cli_reports_a_missing_artifact_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "export", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "manifest.json not found" in result.stderr
    assert "Traceback" not in result.stderr
