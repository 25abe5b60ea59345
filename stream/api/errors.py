"""Errors of the HTTP API: each maps to one status code and a JSON body that says what to fix."""

from __future__ import annotations

from typing import Any, ClassVar

from stream.errors import StreamError


class ApiError(StreamError):
    """A request the API refuses; `status_code` and `code` go into the JSON error body."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []

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


class ModelNotConfiguredError(ApiError):
    """The endpoint needs a model (e.g. NER) that this server was started without."""

    status_code = 404
    code = "model_not_configured"


class NotReadyError(ApiError):
    """The models are still loading, or failed to load; /readyz says which."""

    status_code = 503
    code = "not_ready"


class ModelLoadFailedError(StreamError):
    """A model artifact could not be loaded at startup (missing, corrupt, wrong task)."""


class ServerStartError(StreamError):
    """The API server did not start listening (port in use, bad host)."""
