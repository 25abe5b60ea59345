"""ASGI middleware of the API: the request body cap and per-endpoint request metrics."""

from __future__ import annotations

import json
import time

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream.api.errors import ApiError, InvalidRequestError, PayloadTooLargeError
from stream.api.metrics import ApiMetrics


async def _send_error(send: Send, error: ApiError) -> None:
    payload = json.dumps(error.body()).encode("utf-8")
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a JSON 413.

    A too-large Content-Length is answered before any byte of the body is read; a body sent
    without one (chunked) is counted while the app reads it. (FastAPI's own `max_body_size`
    answers in plain text, and no error body of this API is anything but JSON.)
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: str) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"the request body is {size} bytes; the limit is {self.max_bytes} "
            "(TEXTROUTE_API_MAX_BODY_BYTES): send fewer or shorter items per request"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                error = InvalidRequestError("the Content-Length header is not a number")
                await _send_error(send, error)
                return
            if size > self.max_bytes:
                await _send_error(send, self._too_large(str(size)))
                return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI lets an HTTPException raised while reading the body reach the
                    # app's handlers, which answer with the JSON error body.
                    raise HTTPException(413, self._too_large(f"over {received}").message)
            return message

        await self.app(scope, counting_receive, send)


class RequestMetricsMiddleware:
    """Count requests and time them per route template (not per raw path, to bound labels)."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint=endpoint, status=str(status)).inc()
            self.metrics.request_seconds.labels(endpoint=endpoint).observe(
                time.perf_counter() - started
            )
