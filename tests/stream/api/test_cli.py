"""`textroute serve`: the command is registered, validates flags, and serves over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from stream.api.cli import register
from stream.errors import StreamConfigError
from tests.stream.api.conftest import wait_ready


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:
        """A second command, so typer keeps `serve` as a subcommand."""

    return app


def test_register_adds_serve_with_its_flags() -> None:
    result = CliRunner().invoke(cli(), ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for flag in (
        "--port", "--classifier", "--ner", "--no-ner", "--rules", "--no-batching",
        "--insecure", "--api-key-file", "--max-concurrent", "--request-timeout",
    ):  # fmt: skip
        assert flag in result.output
    assert "TEXTROUTE_API_API_KEY" in result.output


def test_invalid_flag_values_are_a_config_error_naming_the_setting() -> None:
    result = CliRunner().invoke(cli(), ["serve", "--port", "70000"])
    assert isinstance(result.exception, StreamConfigError)
    assert "port" in str(result.exception)


def test_importing_the_cli_module_loads_no_web_or_model_stack() -> None:
    heavy = ("fastapi", "uvicorn", "onnxruntime", "torch", "stream.api.app")
    code = f"import sys, stream.api.cli; print([m for m in {heavy!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
def test_textroute_serve_runs_uvicorn_and_stops_cleanly_on_sigterm(
    tiny_classifier_artifact: Path, tiny_ner_artifact: Path
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTROUTE_")}
    command = [
        sys.executable, "-m", "stream.cli", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--classifier", str(tiny_classifier_artifact), "--ner", str(tiny_ner_artifact),
        "--log-level", "info",
    ]  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_listening(url, proc)
        assert wait_ready(url).status_code == 200
        routed = httpx.post(
            f"{url}/v1/route", json={"text": "the team won the cup", "kind": "article"}
        )
        assert routed.status_code == 200, routed.text
        proc.send_signal(signal.SIGTERM)
        # uvicorn drains, then re-raises the signal so the exit status says SIGTERM.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert "Waiting for application shutdown" in output
        assert "Finished server process" in output
        assert "Traceback" not in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_listening(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 120) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"textroute serve exited with {proc.returncode}:\n{output}")
        try:
            httpx.get(f"{url}/healthz", timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"textroute serve did not listen on {url} in {timeout_s} s")
