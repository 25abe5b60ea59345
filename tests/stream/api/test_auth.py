"""Optional API-key auth: off by default, and when on it guards /v1/* but not the probes,
checked before any byte of the body is read."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from tests.stream.api.conftest import StartApi, raw_post_head, read_response, wait_ready

pytestmark = pytest.mark.integration

BODY = {"text": "the team won the cup"}


def test_without_a_configured_key_requests_need_no_header(start_api: StartApi) -> None:
    server = start_api()
    wait_ready(server.url)
    response = httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30)
    assert response.status_code == 200, response.text


def test_with_a_key_v1_needs_the_right_header_and_probes_stay_open(start_api: StartApi) -> None:
    server = start_api(api_key="s3cret-key")
    assert wait_ready(server.url).status_code == 200
    url = f"{server.url}/v1/classify"

    missing = httpx.post(url, json=BODY, timeout=30)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    assert "X-API-Key" in missing.json()["error"]["message"]

    wrong = httpx.post(url, json=BODY, headers={"X-API-Key": "guess"}, timeout=30)
    assert wrong.status_code == 401
    assert "not valid" in wrong.json()["error"]["message"]
    assert "s3cret" not in wrong.text

    right = httpx.post(url, json=BODY, headers={"X-API-Key": "s3cret-key"}, timeout=30)
    assert right.status_code == 200, right.text

    for probe in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(f"{server.url}{probe}", timeout=30).status_code == 200, probe


def test_the_key_header_name_is_configurable(start_api: StartApi) -> None:
    server = start_api(api_key="k", api_key_header="X-Textroute-Key")
    wait_ready(server.url)
    url = f"{server.url}/v1/entities"
    assert httpx.post(url, json=BODY, headers={"X-API-Key": "k"}, timeout=30).status_code == 401
    ok = httpx.post(url, json=BODY, headers={"X-Textroute-Key": "k"}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_auth_is_checked_before_the_body_is_validated(start_api: StartApi) -> None:
    server = start_api(api_key="k")
    wait_ready(server.url)
    response = httpx.post(f"{server.url}/v1/route", json={"nonsense": 1}, timeout=30)
    assert response.status_code == 401


def test_the_key_is_accepted_as_a_bearer_token(start_api: StartApi) -> None:
    server = start_api(api_key="s3cret-key")
    wait_ready(server.url)
    url = f"{server.url}/v1/classify"
    ok = httpx.post(url, json=BODY, headers={"Authorization": "Bearer s3cret-key"}, timeout=30)
    assert ok.status_code == 200, ok.text
    wrong = httpx.post(url, json=BODY, headers={"Authorization": "Bearer nope"}, timeout=30)
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    basic = httpx.post(url, json=BODY, headers={"Authorization": "Basic s3cret-key"}, timeout=30)
    assert basic.status_code == 401
    # The docs stay readable and say how to authenticate.
    schemes = httpx.get(f"{server.url}/openapi.json", timeout=30).json()["components"]
    assert {s["type"] for s in schemes["securitySchemes"].values()} == {"http", "apiKey"}


def test_the_key_can_come_from_a_file(start_api: StartApi, tmp_path: Path) -> None:
    key_file = tmp_path / "api_key"
    key_file.write_text("from-a-secret\n", encoding="utf-8")
    server = start_api(api_key_file=key_file)
    wait_ready(server.url)
    url = f"{server.url}/v1/classify"
    assert httpx.post(url, json=BODY, timeout=30).status_code == 401
    ok = httpx.post(url, json=BODY, headers={"X-API-Key": "from-a-secret"}, timeout=30)
    assert ok.status_code == 200, ok.text


def test_a_request_without_the_key_is_refused_before_its_body_is_read(
    start_api: StartApi,
) -> None:
    server = start_api(api_key="k")
    wait_ready(server.url)
    for extra in ("", "X-API-Key: wrong\r\n"):
        # Headers promise a body that never comes: a server that read the body first (as a
        # FastAPI dependency does) would wait for it and never answer.
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            started = time.monotonic()
            sock.sendall(raw_post_head("/v1/classify", 10_000, extra))
            status, body = read_response(sock)
        assert status == 401, body
        assert b'"code": "unauthorized"' in body
        assert time.monotonic() - started < 5
