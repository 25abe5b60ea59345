"""The console entry point: usage mistakes print click's short message and exit 2, no traceback."""

from __future__ import annotations

import subprocess
import sys


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
