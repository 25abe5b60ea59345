"""POST /v1/feedback over real HTTP into the real broker: accepted feedback is on the feedback
topic, keyed by message id; refusals in the API's error shape, and nothing produced for them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from schemas.feedback import Feedback
from stream.api import BackgroundServer
from stream.config import BrokerSettings, TopicSettings
from stream.topics import ensure_topics, read_topics
from tests.stream.api.conftest import api_settings
from tests.stream.api.test_http import error_of

pytestmark = pytest.mark.integration

ONE = {
    "message_id": "T-1001",
    "label": "Billing and Payments",
    "reviewer": "ana",
    "reviewed_at": "2026-03-01T10:00:00Z",
}
TWO = [
    {"message_id": "T-1002", "routing_correct": True, "reviewer": "bo",
     "reviewed_at": "2026-03-01T10:01:00Z"},
    {"message_id": "A-7", "labels": ["earn", "acq"], "reviewer": "cy",
     "reviewed_at": "2026-03-01T10:02:00+02:00", "comment": "both",
     "entities": [{"start": 0, "end": 5, "label": "ORG"}]},
]  # fmt: skip

Serve = Callable[..., httpx.Client]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    """An API client for a server with these settings. No model directory: feedback needs no
    model (the model endpoints answer 503 not_ready)."""
    servers: list[BackgroundServer] = []
    clients: list[httpx.Client] = []

    def start(**overrides: Any) -> httpx.Client:
        settings = api_settings(tmp_path / "no-model", None, **overrides)
        server = BackgroundServer(settings).start()
        servers.append(server)
        client = httpx.Client(base_url=server.url, timeout=30)
        clients.append(client)
        return client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


@pytest.fixture
def topics(broker_settings: BrokerSettings, unique_topics: TopicSettings) -> TopicSettings:
    asyncio.run(ensure_topics(broker_settings, [unique_topics.feedback], 2))
    return unique_topics


def _sent(broker: BrokerSettings, topics: TopicSettings) -> dict[bytes | None, Feedback]:
    got = asyncio.run(read_topics(broker, [topics.feedback], idle_s=0.5))
    return {r.key: Feedback.model_validate_json(r.value or b"") for r in got}


def test_feedback_is_produced_keyed_by_message_id_and_answered_202(
    serve: Serve, broker_settings: BrokerSettings, topics: TopicSettings
) -> None:
    client = serve(broker=broker_settings, topics=topics)

    one = client.post("/v1/feedback", json=ONE)
    many = client.post("/v1/feedback", json=TWO)

    assert one.status_code == 202, one.text
    assert one.json() == {"accepted": 1, "topic": topics.feedback}
    assert many.status_code == 202 and many.json()["accepted"] == 2
    sent = _sent(broker_settings, topics)
    assert sorted(sent) == [b"A-7", b"T-1001", b"T-1002"]
    assert sent[b"T-1001"] == Feedback.model_validate(ONE)
    assert sent[b"A-7"].labels == ["earn", "acq"] and sent[b"A-7"].entities is not None
    assert sent[b"T-1002"].routing_correct is True
    metrics = client.get("/metrics").text
    assert 'textroute_api_items_total{endpoint="/v1/feedback",outcome="ok"} 3.0' in metrics


def test_invalid_feedback_is_refused_in_the_api_error_shape_and_nothing_is_produced(
    serve: Serve, broker_settings: BrokerSettings, topics: TopicSettings
) -> None:
    client = serve(broker=broker_settings, topics=topics)
    missing = {k: v for k, v in ONE.items() if k != "reviewer"}
    cases: list[tuple[Any, int, str]] = [
        (missing, 422, "invalid_request"),
        ({**ONE, "label": None}, 422, "invalid_request"),  # says nothing
        ({**ONE, "labels": ["a"]}, 422, "invalid_request"),  # label and labels
        ({**ONE, "extra": 1}, 422, "invalid_request"),
        ([ONE, {**ONE, "reviewed_at": "yesterday"}], 422, "invalid_request"),
        ([], 422, "invalid_request"),
        ([ONE] * 9, 413, "too_many_items"),  # TEST_LIMITS: max_items 8
        ({**missing, "label": None, "labels": ["\udc00"], "reviewer": "a"}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        response = client.post(
            "/v1/feedback",
            content=json.dumps(body),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == status, (body, response.text)
        assert error_of(response)["code"] == code
    bad_json = client.post(
        "/v1/feedback", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400 and error_of(bad_json)["code"] == "invalid_json"
    [first] = error_of(client.post("/v1/feedback", json=missing))["details"][:1]
    assert "reviewer" in first["loc"]
    assert _sent(broker_settings, topics) == {}


def test_without_a_broker_feedback_is_503_with_a_clear_message(serve: Serve) -> None:
    nobody = BrokerSettings(bootstrap_servers="127.0.0.1:9", request_timeout_s=2)
    client = serve(broker=nobody)

    response = client.post("/v1/feedback", json=ONE)

    assert response.status_code == 503, response.text
    error = error_of(response)
    assert error["code"] == "broker_unavailable"
    assert "127.0.0.1:9" in error["message"] and "send it again" in error["message"]
    assert response.headers["retry-after"] == "5"
    # The model endpoints are unaffected by the broker: they answer for their own state.
    assert client.get("/healthz").status_code == 200


def test_a_server_that_takes_no_feedback_says_so(serve: Serve) -> None:
    client = serve(feedback=False)

    response = client.post("/v1/feedback", json=[ONE])

    assert response.status_code == 503
    error = error_of(response)
    assert error["code"] == "feedback_disabled" and "TEXTROUTE_API_FEEDBACK" in error["message"]


def test_feedback_needs_the_api_key_like_every_v1_endpoint(serve: Serve) -> None:
    client = serve(api_key="s3cret", feedback=False)

    assert client.post("/v1/feedback", json=ONE).status_code == 401
    keyed = client.post("/v1/feedback", json=ONE, headers={"Authorization": "Bearer s3cret"})
    assert keyed.status_code == 503  # past the key, to the (disabled) feedback
