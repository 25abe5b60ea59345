"""A server reachable from other machines needs an API key: without one it refuses to start,
unless told `--insecure`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from stream.api import ApiSettings, BackgroundServer
from stream.api.errors import ApiConfigError
from stream.errors import StreamConfigError
from tests.stream.api.conftest import StartApi, api_settings, wait_ready


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("api.example.com", False),
    ],
)
def test_only_loopback_hosts_count_as_private(host: str, loopback: bool) -> None:
    assert ApiSettings(host=host).binds_loopback() is loopback


def test_refuses_to_bind_a_public_address_without_a_key(
    tiny_classifier_artifact: Path,
) -> None:
    settings = api_settings(tiny_classifier_artifact, None, host="0.0.0.0")
    with pytest.raises(ApiConfigError, match=r"0\.0\.0\.0, which is not a loopback") as refused:
        BackgroundServer(settings)
    assert isinstance(refused.value, StreamConfigError)  # the CLI turns it into exit 2
    assert "--insecure" in str(refused.value)
    assert "TEXTROUTE_API_API_KEY" in str(refused.value)


@pytest.mark.integration
def test_textroute_serve_on_a_public_address_without_a_key_exits_2_with_one_line(
    tiny_classifier_artifact: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEXTROUTE_")}
    command = [
        sys.executable, "-m", "stream.cli", "serve", "--host", "0.0.0.0", "--port", "0",
        "--classifier", str(tiny_classifier_artifact), "--no-ner",
    ]  # fmt: skip
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    # One message, which the console may wrap at its width.
    message = " ".join(proc.stderr.split())
    assert message.startswith("error: ApiConfigError: refusing to serve on 0.0.0.0"), message
    assert "--insecure" in message


@pytest.mark.integration
def test_insecure_flag_allows_public_bind(start_api: StartApi) -> None:
    server = start_api(ner=None, host="0.0.0.0", insecure=True)
    url = f"http://127.0.0.1:{server.port}"
    assert wait_ready(url).status_code == 200
    classified = httpx.post(f"{url}/v1/classify", json={"text": "the team won"}, timeout=30)
    assert classified.status_code == 200, classified.text


@pytest.mark.integration
def test_a_public_bind_with_a_key_starts_and_requires_it(start_api: StartApi) -> None:
    server = start_api(ner=None, host="0.0.0.0", api_key="k")
    url = f"http://127.0.0.1:{server.port}"
    assert wait_ready(url).status_code == 200
    assert httpx.post(f"{url}/v1/classify", json={"text": "x"}, timeout=30).status_code == 401


def test_the_key_file_is_read_once_and_bad_ones_are_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("  k3y\n", encoding="utf-8")
    key = ApiSettings(api_key_file=key_file).effective_api_key()
    assert key is not None and key.get_secret_value() == "k3y"

    key_file.write_text("\n", encoding="utf-8")
    with pytest.raises(ValidationError, match="is empty"):
        ApiSettings(api_key_file=key_file)
    with pytest.raises(ValidationError, match="cannot be read"):
        ApiSettings(api_key_file=tmp_path / "missing")
    with pytest.raises(ValidationError, match="not both"):
        ApiSettings(api_key="a", api_key_file=key_file)
