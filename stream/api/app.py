"""The FastAPI application: classify, entities and route endpoints, health, readiness, metrics."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Body, Depends, FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from schemas.feedback import Feedback
from stream.api._items import work_items
from stream.api._middleware import (
    ApiKeyMiddleware,
    BodyLimitMiddleware,
    OverloadMiddleware,
    RequestMetricsMiddleware,
)
from stream.api.errors import (
    ApiError,
    InvalidJsonError,
    InvalidRequestError,
    TooManyItemsError,
)
from stream.api.feedback import FeedbackSink
from stream.api.metrics import ApiMetrics
from stream.api.payloads import (
    ClassifyResponse,
    ClassifyResult,
    EntitiesResponse,
    EntitiesResult,
    ErrorBody,
    FeedbackAccepted,
    ItemErrorInfo,
    ItemRef,
    PredictRequest,
    ReadyStatus,
    RouteResponse,
    RouteResult,
)
from stream.api.service import ModelService, WorkItem
from stream.api.settings import ApiSettings
from stream.models import Loader

log = structlog.get_logger("textroute.api")

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in {
        400: "The body is not JSON.",
        401: "An API key is required and missing or wrong.",
        413: "The body or the batch is over its limit.",
        422: "The JSON does not match the schema, or an item is empty or too long.",
        503: "The models are loading or failed to load (not_ready), too many requests are in "
        "progress (overloaded), or too many items wait for the model (queue_full); retry "
        "after Retry-After seconds. Feedback: the server takes none (feedback_disabled) or "
        "the broker did not acknowledge it (broker_unavailable).",
        504: "The request was not answered within TEXTROUTE_API_REQUEST_TIMEOUT_S.",
    }.items()
}

#: Answered without an API key, and (the first three) without the concurrency limit and timeout.
_PROBES = ("/healthz", "/readyz", "/metrics")
_DOCS = ("/docs", "/docs/oauth2-redirect", "/openapi.json")

_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


def _validation_error(exc: RequestValidationError) -> ApiError:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        cause = next(
            e.get("ctx", {}).get("error", "") for e in errors if e["type"] == "json_invalid"
        )
        return InvalidJsonError(
            f"the request body is not valid JSON ({cause}); send a JSON object with "
            "Content-Type: application/json"
        )
    # The offending input is left out on purpose: it can be megabytes, or a secret.
    details = [
        {"loc": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
        for e in errors
    ]
    first = details[0] if details else {"loc": "body", "message": "invalid"}
    return InvalidRequestError(
        f"the request does not match the schema ({len(details)} problem(s)); first: "
        f"{first['loc']}: {first['message']}. See /docs for the request format.",
        details=details,
    )


def _install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return _error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return _error_response(_validation_error(exc))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.__cause__ is not None:
            # FastAPI's answer when decoding the body fails other than as a JSON syntax error:
            # not UTF-8, nested too deeply, or an integer longer than Python parses.
            return _error_response(
                InvalidJsonError(
                    "the request body cannot be read as JSON (not UTF-8, nested too deeply, "
                    "or a number too long); send a JSON object with "
                    "Content-Type: application/json"
                )
            )
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = str(exc.detail)
        body = {"error": {"code": code, "message": message}}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Logged with the traceback for operators; the client gets no internals.
        log.exception("unhandled error", path=request.url.path)
        body = {
            "error": {
                "code": "internal_error",
                "message": "internal error while handling the request; it was logged on the "
                "server. Retry, and report it if it persists.",
            }
        }
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


def _documented_auth(settings: ApiSettings) -> Callable[..., Awaitable[None]]:
    """A dependency that only declares the API-key schemes in the OpenAPI document (so /docs
    has an Authorize button): ApiKeyMiddleware has checked the key before the body was read."""
    bearer = HTTPBearer(
        auto_error=False, description="`Authorization: Bearer KEY` (TEXTROUTE_API_API_KEY)."
    )
    header = APIKeyHeader(
        name=settings.api_key_header,
        auto_error=False,
        description="The key in this header instead of Authorization.",
    )

    async def declared(
        _bearer: HTTPAuthorizationCredentials | None = Security(bearer),
        _key: str | None = Security(header),
    ) -> None:
        return None

    return declared


ResultT = TypeVar("ResultT", bound=ItemRef)


def _results(
    metrics: ApiMetrics,
    endpoint: str,
    items: Sequence[WorkItem],
    results: Sequence[object],
    result_type: type[ResultT],
    field: str,
) -> list[ResultT]:
    """One result per item (`field` set, or `error`), counted by outcome."""
    out: list[ResultT] = []
    for item, result in zip(items, results, strict=True):
        failed = isinstance(result, ItemErrorInfo)
        fields = {
            "index": item.index,
            "message_id": item.message_id,
            "kind": item.kind,
            "error" if failed else field: result,
        }
        out.append(result_type.model_validate(fields))
        outcome = result.reason if isinstance(result, ItemErrorInfo) else "ok"
        metrics.items.labels(endpoint=endpoint, outcome=outcome).inc()
    return out


def _feedback_items(body: Feedback | list[Feedback], settings: ApiSettings) -> list[Feedback]:
    """The request's feedback as a list; 4xx errors for an empty or oversized batch (the schema
    itself refuses text that is not Unicode)."""
    items = body if isinstance(body, list) else [body]
    if not items:
        raise InvalidRequestError("the batch is empty: send at least one feedback")
    if len(items) > settings.max_items:
        raise TooManyItemsError(
            f"{len(items)} feedback records in one request; the limit is {settings.max_items} "
            "(TEXTROUTE_API_MAX_ITEMS): split the batch"
        )
    return items


def _v1_router(
    settings: ApiSettings, service: ModelService, metrics: ApiMetrics, feedback: FeedbackSink
) -> APIRouter:
    declared = settings.effective_api_key() is not None
    router = APIRouter(
        prefix="/v1",
        dependencies=[Depends(_documented_auth(settings))] if declared else [],
        responses=_ERROR_RESPONSES,
    )

    @router.post("/classify", response_model=ClassifyResponse, tags=["inference"])
    async def classify(body: PredictRequest) -> ClassifyResponse:
        """Classify one or more texts or inbound messages; items share model batches with
        concurrent requests."""
        items = work_items(body, settings)
        info = service.classifier_info()
        results = await service.classify(items)
        out = _results(metrics, "/v1/classify", items, results, ClassifyResult, "classification")
        return ClassifyResponse(model=info, results=out)

    @router.post("/entities", response_model=EntitiesResponse, tags=["inference"])
    async def entities(body: PredictRequest) -> EntitiesResponse:
        """Named entities (spans over the original text) of one or more texts or messages."""
        items = work_items(body, settings)
        info = service.ner_info()
        results = await service.entities(items)
        out = _results(metrics, "/v1/entities", items, results, EntitiesResult, "entities")
        return EntitiesResponse(model=info, results=out)

    @router.post("/route", response_model=RouteResponse, tags=["inference"])
    async def route(body: PredictRequest) -> RouteResponse:
        """Classify, find entities and apply the stream's routing rules. Plain texts need
        `kind`, since rules can depend on the message kind."""
        items = work_items(body, settings)
        if any(item.kind is None for item in items):
            raise InvalidRequestError(
                "routing plain texts needs `kind` (email, ticket or article), because "
                "routing rules can depend on it; or send `message`/`messages`"
            )
        results = await service.route(items)
        return RouteResponse(
            results=_results(metrics, "/v1/route", items, results, RouteResult, "routing")
        )

    @router.post("/feedback", status_code=202, response_model=FeedbackAccepted, tags=["review"])
    async def take_feedback(
        body: Annotated[Feedback | list[Feedback], Body()],
    ) -> FeedbackAccepted:
        """Reviewers' corrections: one Feedback or a list. Each is produced to the feedback
        topic, keyed by its message id, and acknowledged by the broker before the answer
        (202); the review store joins it with the routed message. 503 when the server takes
        no feedback or the broker does not acknowledge it: then send it all again."""
        items = _feedback_items(body, settings)
        accepted = await feedback.send(items)
        metrics.items.labels(endpoint="/v1/feedback", outcome="ok").inc(accepted)
        return FeedbackAccepted(accepted=accepted, topic=feedback.topic)

    return router


def create_app(settings: ApiSettings, predictor_loader: Loader | None = None) -> FastAPI:
    """Build the API. Models load in the background at startup; /readyz turns 200 when done.

    `predictor_loader` loads one artifact directory; default: the inference layer's
    `load_predictor` with InferenceSettings from TEXTROUTE_INFERENCE_*.
    """
    metrics = ApiMetrics()
    service = ModelService(settings, metrics, loader=predictor_loader)
    feedback = FeedbackSink(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(service.load(), name="load-models")
        try:
            yield
        finally:
            loading.cancel()
            await service.aclose()
            await feedback.aclose()

    app = FastAPI(
        title="textroute",
        summary="Classify, tag and route emails, tickets and articles.",
        version="1",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    app.state.service = service
    app.state.metrics = metrics
    _install_error_handlers(app)
    # The last added runs outermost: metrics count every answer; a request without the key is
    # refused before it takes a place among the requests in progress; the timeout covers
    # reading the body.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        OverloadMiddleware,
        max_in_flight=settings.max_concurrent_requests,
        timeout_s=settings.request_timeout_s,
        exempt_paths=_PROBES,
        metrics=metrics,
    )
    key = settings.effective_api_key()
    if key is not None:
        app.add_middleware(
            ApiKeyMiddleware,
            key=key,
            header=settings.api_key_header,
            open_paths=_PROBES + _DOCS,
        )
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    app.include_router(_v1_router(settings, service, metrics, feedback))

    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves HTTP (models may still be loading)."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        response_model=ReadyStatus,
        tags=["operations"],
        responses={503: {"model": ReadyStatus, "description": "Loading or failed."}},
    )
    async def readyz() -> Response:
        """Readiness: 200 once every configured model is loaded, 503 before or on failure."""
        status = ReadyStatus(status=service.status, models=service.models(), error=service.error)
        code = 200 if service.status == "ready" else 503
        return JSONResponse(status.model_dump(mode="json"), status_code=code)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics in the text exposition format."""
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
