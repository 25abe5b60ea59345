"""Faults inside the server: a JSON 500 that names no internals, and the error body shape."""

from __future__ import annotations

from pathlib import Path

import httpx

from stream.api import ApiSettings, create_app
from stream.api.errors import InvalidRequestError, TooManyItemsError


async def test_an_unexpected_exception_is_a_json_500_without_internals(tmp_path: Path) -> None:
    app = create_app(ApiSettings(classifier_dir=tmp_path / "none", ner_dir=None))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("connection string postgres://user:secret@db")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert "secret" not in response.text
    assert "RuntimeError" not in response.text
    assert "Traceback" not in response.text


def test_error_bodies_carry_code_message_and_only_given_details() -> None:
    plain = TooManyItemsError("too many").body()
    assert plain == {"error": {"code": "too_many_items", "message": "too many"}}
    detailed = InvalidRequestError("bad", details=[{"index": 1}]).body()
    assert detailed["error"]["details"] == [{"index": 1}]
    assert TooManyItemsError.status_code == 413
    assert InvalidRequestError.status_code == 422
