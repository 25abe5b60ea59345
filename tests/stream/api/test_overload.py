"""Overload protection over real HTTP: too many requests in flight, a full model queue and slow
requests are refused at once with a JSON 503 or 504, and the server recovers afterwards."""

from __future__ import annotations

import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.stream.api.conftest import (
    Gate,
    StartApi,
    raw_post_head,
    read_response,
    sample,
    wait_ready,
)

pytestmark = pytest.mark.integration

BODY = {"text": "the team won the cup"}
# Refusals must come at once, not after the held request is let go.
PROMPT_S = 5.0


def post_in_background(pool: ThreadPoolExecutor, url: str, body: dict[str, Any]) -> Future[Any]:
    return pool.submit(httpx.post, f"{url}/v1/classify", json=body, timeout=60)


def timed_post(url: str, body: dict[str, Any]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    # The client timeout is what fails these tests when a refusal is missing: without it the
    # request would wait behind the gate.
    response = httpx.post(f"{url}/v1/classify", json=body, timeout=PROMPT_S * 2)
    return response, time.monotonic() - started


def in_flight(url: str) -> float:
    return sample(httpx.get(f"{url}/metrics", timeout=10).text, "textroute_api_requests_in_flight")


def test_requests_over_the_concurrency_limit_get_503(start_api: StartApi, gate: Gate) -> None:
    server = start_api(ner=None, loader=gate.loader(), max_concurrent_requests=1)
    wait_ready(server.url)
    with ThreadPoolExecutor(1) as pool:
        held = post_in_background(pool, server.url, BODY)
        assert gate.entered.wait(30), "the first request never reached the model"

        refused, took = timed_post(server.url, BODY)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "overloaded"
        assert "TEXTROUTE_API_MAX_CONCURRENT_REQUESTS" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == "1"
        assert took < PROMPT_S
        # Probes and metrics are not limited: an overloaded server is still alive and ready.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        assert in_flight(server.url) == 1

        gate.release.set()
        assert held.result().status_code == 200
    assert httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30).status_code == 200
    assert in_flight(server.url) == 0


def test_a_full_batch_queue_refuses_work_with_503(start_api: StartApi, gate: Gate) -> None:
    # max_items is 8 in the test limits: one full request fills the queue.
    server = start_api(ner=None, loader=gate.loader(), batch_queue_max_items=8)
    wait_ready(server.url)
    with ThreadPoolExecutor(1) as pool:
        held = post_in_background(pool, server.url, {"texts": ["the team won"] * 8})
        assert gate.entered.wait(30), "the first request never reached the model"

        refused, took = timed_post(server.url, BODY)
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "queue_full"
        assert "8 items already wait" in error["message"]
        assert "TEXTROUTE_API_BATCH_QUEUE_MAX_ITEMS" in error["message"]
        assert refused.headers["retry-after"] == "1"
        assert took < PROMPT_S

        gate.release.set()
        assert held.result().status_code == 200
    assert httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30).status_code == 200


def test_a_slow_request_gets_504(start_api: StartApi, gate: Gate) -> None:
    server = start_api(ner=None, loader=gate.loader(), request_timeout_s=0.5)
    wait_ready(server.url)

    slow, took = timed_post(server.url, BODY)
    assert slow.status_code == 504, slow.text
    assert slow.json()["error"]["code"] == "timeout"
    assert "TEXTROUTE_API_REQUEST_TIMEOUT_S" in slow.json()["error"]["message"]
    assert took < PROMPT_S

    gate.release.set()
    # The timed-out request gave its place back; the server answers normally.
    assert httpx.post(f"{server.url}/v1/classify", json=BODY, timeout=30).status_code == 200
    assert in_flight(server.url) == 0


def test_a_client_sending_its_body_too_slowly_gets_504(start_api: StartApi) -> None:
    server = start_api(ner=None, request_timeout_s=0.5)
    wait_ready(server.url)
    with socket.create_connection(("127.0.0.1", server.port), timeout=PROMPT_S) as sock:
        sock.sendall(raw_post_head("/v1/classify", 100) + b'{"text": "the te')
        status, body = read_response(sock)
    assert status == 504
    assert b'"code": "timeout"' in body
