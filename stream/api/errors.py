"""Errors of the HTTP API: each maps to one status code and a JSON body that says what to fix."""

from __future__ import annotations

from typing import Any, ClassVar

from stream.errors import StreamConfigError, StreamError


class ApiError(StreamError):
    """A request the API refuses; `status_code` and `code` go into the JSON error body."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    #: Seconds a client should wait before retrying (the Retry-After header); None: no header.
    retry_after_s: ClassVar[int | None] = None

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

    def headers(self) -> dict[str, str]:
        """Headers the error response carries besides its content type."""
        if self.retry_after_s is None:
            return {}
        return {"Retry-After": str(self.retry_after_s)}

    def body(self) -> dict[str, Any]:
        """The JSON error body: {"error": {"code", "message", "details"}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidJsonError(ApiError):
    """The body is not JSON at all."""

    status_code = 400
    code = "invalid_json"


class InvalidRequestError(ApiError):
    """The JSON does not match the request schema: a missing field, a wrong type, empty text."""

    status_code = 422
    code = "invalid_request"


class PayloadTooLargeError(ApiError):
    """The body is over TEXTROUTE_API_MAX_BODY_BYTES."""

    status_code = 413
    code = "payload_too_large"


class TooManyItemsError(ApiError):
    """One request carries more texts or messages than TEXTROUTE_API_MAX_ITEMS."""

    status_code = 413
    code = "too_many_items"


class UnauthorizedError(ApiError):
    """An API key is configured and the request has no key or a wrong one."""

    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ModelNotConfiguredError(ApiError):
    """The endpoint needs a model (e.g. NER) that this server was started without."""

    status_code = 404
    code = "model_not_configured"


class NotReadyError(ApiError):
    """The models are still loading, or failed to load; /readyz says which."""

    status_code = 503
    code = "not_ready"
    retry_after_s = 5


class OverloadedError(ApiError):
    """TEXTROUTE_API_MAX_CONCURRENT_REQUESTS requests are already in progress."""

    status_code = 503
    code = "overloaded"
    retry_after_s = 1


class QueueFullError(ApiError):
    """TEXTROUTE_API_BATCH_QUEUE_MAX_ITEMS items already wait for the model."""

    status_code = 503
    code = "queue_full"
    retry_after_s = 1


class ShuttingDownError(ApiError):
    """The server is stopping and takes no new work."""

    status_code = 503
    code = "shutting_down"
    retry_after_s = 5


class RequestTimeoutError(ApiError):
    """The request was not answered within TEXTROUTE_API_REQUEST_TIMEOUT_S."""

    status_code = 504
    code = "timeout"


class ServerStartError(StreamError):
    """The API server did not start listening (port in use, bad host)."""


class ApiConfigError(StreamConfigError):
    """The API settings are unsafe to start with, e.g. a public address without an API key."""


class FeedbackDisabledError(ApiError):
    """The server takes no feedback (TEXTROUTE_API_FEEDBACK=false)."""

    status_code = 503
    code = "feedback_disabled"


class FeedbackUnavailableError(ApiError):
    """The broker feedback goes to did not answer or did not acknowledge it; none of the
    request's feedback may be counted as taken, so the client should send it again."""

    status_code = 503
    code = "broker_unavailable"
    retry_after_s = 5
