"""Optional API-key auth: off by default, and when on it guards /v1/* but not the probes."""

from __future__ import annotations

import httpx
import pytest

from tests.stream.api.conftest import StartApi, wait_ready

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
