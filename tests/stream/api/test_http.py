"""The API over real HTTP (uvicorn on loopback) with the tiny ONNX models: answers and refusals."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fixtures_artifacts import TOPICS
from tests.stream.api.conftest import sample

pytestmark = pytest.mark.integration

EMAIL = {
    "kind": "email",
    "id": "e-1",
    "from": "ops@example.com",
    "to": "desk@example.com",
    "subject": "john smith visited paris",
    "body": "for google after the game",
}
TICKET = {"kind": "ticket", "id": "t-1", "customer": "acme", "body": "the stock market price"}
ARTICLE = {
    "kind": "article",
    "id": "a-1",
    "headline": "nasa space computer",
    "body": "software for the web",
    "source": "reuters",
}
ROUTES = {"desk.world", "desk.sports", "desk.business", "desk.scitech", "human-review", "triage"}


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The JSON error body, checked for the common shape and for leaked internals."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] and error["message"]
    return error


# ---- happy paths ----


def test_classify_one_text_returns_a_label_of_the_model(client: httpx.Client) -> None:
    response = client.post("/v1/classify", json={"text": "the team won the cup match"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {
        "name": "tiny-topics",
        "version": "20250101T000000Z",
        "backend": "onnx-int8",
    }
    [result] = body["results"]
    assert result["index"] == 0 and result["error"] is None
    classification = result["classification"]
    assert classification["label"] in TOPICS
    assert 0.0 <= classification["score"] <= 1.0
    assert classification["top_k"][0]["label"] == classification["label"]


def test_classify_batch_keeps_order_and_matches_single_requests(client: httpx.Client) -> None:
    texts = ["the team won the cup match", "stock market shares profit", "nasa space software"]
    batch = client.post("/v1/classify", json={"texts": texts}).json()["results"]
    assert [r["index"] for r in batch] == [0, 1, 2]
    for text, result in zip(texts, batch, strict=True):
        alone = client.post("/v1/classify", json={"text": text}).json()["results"][0]
        assert result["classification"]["label"] == alone["classification"]["label"]


def test_classify_messages_echoes_id_and_kind(client: httpx.Client) -> None:
    response = client.post("/v1/classify", json={"messages": [EMAIL, TICKET, ARTICLE]})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["message_id"], r["kind"]) for r in results] == [
        ("e-1", "email"),
        ("t-1", "ticket"),
        ("a-1", "article"),
    ]
    assert all(r["classification"]["label"] in TOPICS for r in results)


def test_entities_are_spans_over_the_original_text(client: httpx.Client) -> None:
    text = "john smith visited paris for google"
    response = client.post("/v1/entities", json={"text": text})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"]["name"] == "tiny-ner"
    entities = body["results"][0]["entities"]
    assert entities, "the tiny tagger finds the people, places and orgs it was trained on"
    for entity in entities:
        assert text[entity["start"] : entity["end"]] == entity["text"]
        assert entity["type"] in {"PER", "LOC", "ORG"}


def test_route_message_uses_the_default_rules_and_both_models(client: httpx.Client) -> None:
    response = client.post("/v1/route", json={"message": EMAIL})
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert (result["message_id"], result["kind"]) == ("e-1", "email")
    routing = result["routing"]
    assert routing["route"] in ROUTES
    assert routing["reasons"], "every decision says which rule chose it"
    assert routing["classifier"]["name"] == "tiny-topics"
    assert routing["ner"]["name"] == "tiny-ner"
    model_text = f"{EMAIL['subject']}\n{EMAIL['body']}"
    for entity in routing["entities"]:
        assert model_text[entity["start"] : entity["end"]] == entity["text"]


def test_route_texts_with_a_kind(client: httpx.Client) -> None:
    texts = ["the team won the cup match", "stock market shares profit"]
    response = client.post("/v1/route", json={"texts": texts, "kind": "article"})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["kind"] for r in results] == ["article", "article"]
    assert all(r["routing"]["route"] in ROUTES for r in results)


def test_health_docs_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready"
    assert set(ready["models"]) == {"classifier", "ner"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/classify", "/v1/entities", "/v1/route", "/readyz"} <= set(paths)
    client.post("/v1/classify", json={"text": "the team won"})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert sample(text, "textroute_api_requests_total", endpoint="/v1/classify", status="200")
    assert sample(text, "textroute_api_items_total", endpoint="/v1/classify", outcome="ok")
    assert sample(text, "textroute_api_batch_size_count", model="classifier")
    assert sample(text, "textroute_api_model_ready", model="ner") == 1.0
    # The classifier's and the NER model's graphs, each loaded once in this process.
    assert (sample(text, "textroute_onnx_graphs_loaded") or 0) >= 2


# ---- bad input: each gets a 4xx with a clear message, never a stack trace ----


@pytest.mark.parametrize(
    ("body", "status", "code", "says"),
    [
        ({}, 422, "invalid_request", "exactly one of"),
        ({"text": "a", "texts": ["b"]}, 422, "invalid_request", "got text, texts"),
        ({"texts": []}, 422, "invalid_request", "empty"),
        ({"texts": [1, 2]}, 422, "invalid_request", "body.texts.0: Input should be a valid string"),
        ({"text": None}, 422, "invalid_request", "exactly one of"),
        ({"text": "   "}, 422, "invalid_request", "item 0: text is empty"),
        ({"text": "x" * 401}, 422, "invalid_request", "401 characters; the limit is 400"),
        ({"texts": ["a"] * 9}, 413, "too_many_items", "9 items in one request; the limit is 8"),
        ({"txt": "typo"}, 422, "invalid_request", "txt"),
        ({"message": {"kind": "fax", "id": "1"}}, 422, "invalid_request", "fax"),
        ({"message": {"id": "1", "body": "no kind"}}, 422, "invalid_request", "kind"),
        (
            {"message": {"kind": "ticket", "id": "t", "body": "missing customer"}},
            422,
            "invalid_request",
            "body.message.ticket.customer: Field required",
        ),
        (
            {"message": {"kind": "article", "id": "a", "body": "", "source": "r"}},
            422,
            "invalid_request",
            "message has no text",
        ),
    ],
    ids=[
        "nothing",
        "two-inputs",
        "empty-batch",
        "wrong-types",
        "null-text",
        "blank-text",
        "text-too-long",
        "too-many-items",
        "unknown-field",
        "unknown-kind",
        "missing-kind",
        "missing-field",
        "message-without-text",
    ],
)
def test_bad_request_bodies_get_a_clear_4xx(
    client: httpx.Client, body: dict[str, Any], status: int, code: str, says: str
) -> None:
    response = client.post("/v1/classify", json=body)
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["code"] == code
    assert says in error["message"] + str(error.get("details", ""))


def test_per_item_problems_name_every_bad_item(client: httpx.Client) -> None:
    response = client.post("/v1/classify", json={"texts": ["fine", "", "x" * 500]})
    assert response.status_code == 422
    details = error_of(response)["details"]
    assert [(d["index"], d["reason"]) for d in details] == [(1, "empty_text"), (2, "text_too_long")]


def test_malformed_json_is_a_400(client: httpx.Client) -> None:
    response = client.post(
        "/v1/classify",
        content=b'{"text": "unterminated',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_json"
    assert "not valid JSON" in error["message"]


def test_non_json_content_type_is_refused(client: httpx.Client) -> None:
    response = client.post(
        "/v1/classify", content=b"just text", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid_request"


def test_body_over_the_cap_is_a_413_by_content_length(client: httpx.Client) -> None:
    response = client.post("/v1/classify", json={"text": "a " * 9_000})
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large"
    assert "limit is 16000" in error["message"]


def test_chunked_body_over_the_cap_is_a_413_while_reading(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"text": "'
        for _ in range(40):
            yield b"a" * 1_000
        yield b'"}'

    response = client.post(
        "/v1/classify", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_route_of_plain_texts_without_kind_is_refused(client: httpx.Client) -> None:
    response = client.post("/v1/route", json={"texts": ["the team won"]})
    assert response.status_code == 422
    assert "needs `kind`" in error_of(response)["message"]


def test_unknown_path_and_wrong_method_are_json_errors(client: httpx.Client) -> None:
    missing = client.post("/v1/translate", json={"text": "x"})
    assert missing.status_code == 404
    assert error_of(missing)["code"] == "not_found"
    wrong = client.get("/v1/classify")
    assert wrong.status_code == 405
    assert error_of(wrong)["code"] == "method_not_allowed"


def test_refused_requests_are_counted_in_metrics(client: httpx.Client) -> None:
    client.post("/v1/classify", json={"texts": ["a"] * 9})
    text = client.get("/metrics").text
    assert sample(text, "textroute_api_requests_total", endpoint="/v1/classify", status="413")
