"""The console entry point: usage mistakes print click's short message and exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _textroute(*args: str) -> subprocess.CompletedProcess[str]:
    """The `textroute` console script, as installed: stream.cli:main."""
    argv = ["textroute", *args]
    code = f"import sys; from stream.cli import main; sys.argv = {argv!r}; main()"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def test_a_missing_required_option_is_a_usage_message_not_a_traceback() -> None:
    result = _textroute("evaluate", "models/none")
    assert result.returncode == 2
    assert "Missing option '--data'" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_an_unknown_command_is_a_usage_message_not_a_traceback() -> None:
    result = _textroute("no-such-command")
    assert result.returncode == 2
    assert "No such command" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_a_command_exit_code_is_passed_on_not_turned_into_zero() -> None:
    import typer

    from stream._cli_runner import run_app

    app = typer.Typer()

    @app.command()
    def fail() -> None:
        raise typer.Exit(3)

    @app.command()
    def other() -> None:
        pass

    argv = sys.argv
    sys.argv = ["textroute", "fail"]
    try:
        run_app(app)
    except SystemExit as exc:
        assert exc.code == 3
    else:
        raise AssertionError("run_app returned instead of exiting 3")
    finally:
        sys.argv = argv


def test_a_long_error_is_one_line_whatever_the_width(tmp_path: Path) -> None:
    missing = tmp_path / ("a-rather-long-directory-name-" * 4) / "models"
    env = {**os.environ, "COLUMNS": "40"}
    argv = ["textroute", "promote", str(missing), "--home", str(tmp_path / "home")]
    code = f"import sys; from stream.cli import main; sys.argv = {argv!r}; main()"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
