"""Fuzzing the running API from its own OpenAPI schema, and with bodies no schema describes:
every answer is a documented status with a JSON error body, never a 500."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from stream.api import BackgroundServer
from tests.stream.api.conftest import api_settings, wait_ready

pytestmark = pytest.mark.integration

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: The only 5xx the API documents: not ready / overloaded / queue full, and timeout.
DOCUMENTED_5XX = {503, 504}
#: Examples per generation mode over all operations: about 20 s on a 2-core machine.
EXAMPLES = 150


@pytest.fixture(scope="module")
def fuzz_url(tiny_classifier_artifact: Path, tiny_ner_artifact: Path) -> Iterator[str]:
    """A server with both models and an API key, limits as in the other API tests."""
    server_settings = api_settings(tiny_classifier_artifact, tiny_ner_artifact, api_key=KEY)
    with BackgroundServer(server_settings) as server:
        assert wait_ready(server.url).status_code == 200
        yield server.url


def assert_well_behaved(status: int, content_type: str, text: str, what: str) -> None:
    """No 5xx but the documented ones, and every error a JSON body with a code and message."""
    assert status < 500 or status in DOCUMENTED_5XX, f"{what}: {status} {text[:500]}"
    if status >= 400:
        assert content_type.startswith("application/json"), f"{what}: {content_type} {text[:200]}"
        error = json.loads(text)["error"]
        assert error["code"] and error["message"], what
        assert "Traceback" not in text, what


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_500(fuzz_url: str, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_url}/openapi.json", headers=AUTH)
    operations = schema.as_strategy(generation_mode=mode)
    statuses: Counter[int] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operations)
    def one(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=fuzz_url, headers=AUTH, timeout=30)
        what = f"{case.method} {case.path} {case.body!r:.300}"
        assert_well_behaved(
            response.status_code, response.headers.get("content-type", [""])[0], response.text, what
        )
        statuses[response.status_code] += 1

    one()
    # The key let the requests through to the handlers, which answered and refused.
    if mode is GenerationMode.POSITIVE:
        assert statuses[200] > 0, statuses
    assert statuses[422] > 0, statuses
    assert statuses[401] == 0, statuses


ENDPOINTS = ("/v1/classify", "/v1/entities", "/v1/route")
JSON = {"content-type": "application/json"}
DIGITS = "9" * 5000


def malformed() -> Iterator[tuple[str, bytes, dict[str, str], str | None]]:
    """(name, body, headers, the error code it must get) of requests no schema-driven generator
    sends; None where serving it is fine too, as long as it is not a 500."""
    for name, text, code in [
        ("empty", "", "invalid_request"),
        ("truncated", '{"text": "unterminated', "invalid_json"),
        ("not-an-object", '["the team won"]', "invalid_request"),
        ("null", "null", "invalid_request"),
        ("string", '"the team won"', "invalid_request"),
        ("trailing-garbage", '{"text": "a"} {}', "invalid_json"),
        ("lone-high-surrogate", '{"text": "\\ud800", "kind": "email"}', "invalid_request"),
        ("lone-low-surrogate-in-batch", '{"texts": ["fine", "\\udfff tail"]}', "invalid_request"),
        (
            "surrogate-in-message",
            '{"message": {"kind": "ticket", "id": "\\ud83d", "customer": "c\\udc00", '
            '"body": "the stock \\ud800 market"}}',
            "invalid_request",
        ),
        ("surrogate-in-kind", '{"text": "a", "kind": "\\ud800"}', "invalid_request"),
        ("surrogate-in-key", '{"\\ud800": "a"}', "invalid_request"),
        ("huge-integer", f'{{"text": {DIGITS}}}', "invalid_json"),
        ("huge-integer-in-kind", f'{{"text": "a", "kind": {DIGITS}}}', "invalid_json"),
        ("huge-float", f'{{"texts": [1.{DIGITS}e{DIGITS}]}}', "invalid_request"),
        ("nan", '{"text": NaN}', "invalid_request"),
        ("infinity", '{"texts": [Infinity]}', "invalid_request"),
        ("deep-nesting", '{"text": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json"),
        ("nul-byte", '{"text": "a\\u0000b", "kind": "ticket"}', None),
        ("control-chars", '{"text": "\\u0007\\u001b[31m", "kind": "ticket"}', None),
        ("duplicate-keys", '{"text": "a", "text": "b", "kind": "ticket"}', None),
        ("bom", '\ufeff{"text": "a", "kind": "ticket"}', None),
    ]:
        yield name, text.encode("utf-8", "surrogatepass"), JSON, code
    body = b'{"text": "a", "kind": "email"}'
    yield "invalid-utf8", b'{"text": "\xff\xfe"}', JSON, "invalid_json"
    yield "utf16", body.decode().encode("utf-16"), {"content-type": JSON_UTF16}, None
    yield "bogus-charset", body, {"content-type": "application/json; charset=nope"}, None
    yield "text-plain", b"the team won", {"content-type": "text/plain"}, "invalid_request"
    yield (
        "form",
        b"text=a",
        {"content-type": "application/x-www-form-urlencoded"},
        "invalid_request",
    )
    yield (
        "multipart",
        b"--x\r\n\r\nhi\r\n--x--",
        {"content-type": "multipart/form-data"},
        ("invalid_request"),
    )
    yield "no-content-type", body, {}, "invalid_request"
    yield "bogus-content-type", body, {"content-type": "///"}, "invalid_request"
    yield "gzip-claimed", body, {**JSON, "content-encoding": "gzip"}, None
    yield "huge", b'{"text": "' + b"a" * 200_000 + b'"}', JSON, "payload_too_large"


JSON_UTF16 = "application/json; charset=utf-16"
CASES = list(malformed())


@pytest.mark.parametrize(("name", "body", "headers", "code"), CASES, ids=[c[0] for c in CASES])
def test_malformed_bodies_get_a_clear_4xx_never_a_500(
    fuzz_url: str, name: str, body: bytes, headers: dict[str, str], code: str | None
) -> None:
    with httpx.Client(base_url=fuzz_url, headers=AUTH, timeout=30) as client:
        for endpoint in ENDPOINTS:
            response = client.post(endpoint, content=body, headers=headers)
            what = f"{name} on {endpoint}"
            assert_well_behaved(
                response.status_code, response.headers.get("content-type", ""), response.text, what
            )
            if code is not None:
                assert response.json()["error"]["code"] == code, f"{what}: {response.text[:300]}"


def test_a_lone_surrogate_is_refused_naming_the_item(fuzz_url: str) -> None:
    body = '{"texts": ["fine", "bad \\udfff", "fine too"]}'
    response = httpx.post(
        f"{fuzz_url}/v1/classify", content=body.encode(), headers={**AUTH, **JSON}, timeout=30
    )
    assert response.status_code == 422, response.text
    [problem] = response.json()["error"]["details"]
    assert (problem["index"], problem["reason"]) == (1, "invalid_text")
    assert "lone surrogate" in problem["message"]
