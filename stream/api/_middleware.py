"""ASGI middleware of the API: API-key auth, overload protection, the request body cap and
per-endpoint request metrics."""

from __future__ import annotations

import asyncio
import hmac
import json
import time
from collections.abc import Iterable

import structlog
from pydantic import SecretStr
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stream.api.errors import (
    ApiError,
    InvalidRequestError,
    OverloadedError,
    PayloadTooLargeError,
    RequestTimeoutError,
    UnauthorizedError,
)
from stream.api.metrics import ApiMetrics

log = structlog.get_logger("textroute.api")


async def _send_error(send: Send, error: ApiError) -> None:
    payload = json.dumps(error.body()).encode("utf-8")
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode("ascii")),
    ]
    headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in error.headers().items()
    ]
    await send({"type": "http.response.start", "status": error.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class ApiKeyMiddleware:
    """Refuse requests without the API key with a JSON 401, before any byte of the body is read.

    The key is accepted as `Authorization: Bearer KEY` or in `header` (X-API-Key). Paths in
    `open_paths` (probes, metrics, docs) need no key. This is ASGI middleware rather than a
    FastAPI dependency because FastAPI reads and parses a request's body before it runs the
    dependencies: anyone could make the server read and parse up to the body cap per request.
    """

    def __init__(
        self, app: ASGIApp, *, key: SecretStr, header: str, open_paths: Iterable[str]
    ) -> None:
        self.app = app
        self.header = header
        self._key = key.get_secret_value().encode("utf-8")
        self._header = header.lower().encode("latin-1")
        self._open_paths = frozenset(open_paths)

    def _presented(self, headers: Iterable[tuple[bytes, bytes]]) -> list[bytes]:
        keys = []
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    keys.append(token.strip())
            elif name == self._header:
                keys.append(value.strip())
        return keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._open_paths:
            await self.app(scope, receive, send)
            return
        presented = self._presented(scope["headers"])
        if not presented:
            await _send_error(
                send,
                UnauthorizedError(
                    "this server requires an API key: send it as `Authorization: Bearer KEY` "
                    f"or in the {self.header} header"
                ),
            )
            return
        # Constant-time comparison, so the response time does not leak how much of a guess
        # was right; every presented key is compared, so neither does which header matched.
        matches = [hmac.compare_digest(key, self._key) for key in presented]
        if not any(matches):
            await _send_error(
                send,
                UnauthorizedError(
                    f"the API key (Authorization: Bearer or {self.header}) is not valid"
                ),
            )
            return
        await self.app(scope, receive, send)


class OverloadMiddleware:
    """Bound the requests in progress and how long each may take.

    Beyond `max_in_flight` a request gets a JSON 503 with Retry-After at once rather than a
    place in a queue that would grow without end; one not answered within `timeout_s` (model
    calls, or a client sending its body too slowly) gets a JSON 504, and its queued items are
    withdrawn. Paths in `exempt_paths` (liveness, readiness, metrics) are neither limited nor
    timed, so an overloaded server still tells its orchestrator it is alive.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_in_flight: int,
        timeout_s: float,
        exempt_paths: Iterable[str],
        metrics: ApiMetrics,
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.timeout_s = timeout_s
        self.metrics = metrics
        self._exempt = frozenset(exempt_paths)
        self._in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._exempt:
            await self.app(scope, receive, send)
            return
        if self._in_flight >= self.max_in_flight:
            refusal = OverloadedError(
                f"{self._in_flight} requests are in progress, the most this server takes at "
                "once (TEXTROUTE_API_MAX_CONCURRENT_REQUESTS); retry after a second"
            )
            await _send_error(send, refusal)
            return
        self._in_flight += 1
        self.metrics.in_flight.inc()
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, tracking_send), self.timeout_s)
        # asyncio's own TimeoutError: on Python 3.10 it is not the builtin one.
        except asyncio.TimeoutError:
            log.warning("api.request_timeout", path=scope["path"], timeout_s=self.timeout_s)
            if started:
                # Half a response is out: nothing valid can follow, and the server closes the
                # connection when the app returns without finishing it.
                return
            error = RequestTimeoutError(
                f"the request was not answered within {self.timeout_s:g} s "
                "(TEXTROUTE_API_REQUEST_TIMEOUT_S): the server is busy, or the batch is too "
                "large; retry later or send fewer items per request"
            )
            await _send_error(send, error)
        finally:
            self._in_flight -= 1
            self.metrics.in_flight.dec()


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
