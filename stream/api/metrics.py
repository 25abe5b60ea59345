"""Prometheus metrics of the HTTP API, kept in a registry of its own per app instance."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from stream.metrics import onnx_graphs_gauge

# Batches are small on the API path: most of the resolution is below 64.
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """Request, item, batch and model metrics; one registry per app so tests can build many."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.requests = Counter(
            "textroute_api_requests",
            "HTTP requests by endpoint and status code.",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "textroute_api_request_seconds",
            "HTTP request latency by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "textroute_api_requests_in_flight",
            "Requests in progress (probes and metrics not counted); at "
            "TEXTROUTE_API_MAX_CONCURRENT_REQUESTS new ones get 503.",
            registry=self.registry,
        )
        self.items = Counter(
            "textroute_api_items",
            "Texts and messages processed, by endpoint and outcome (ok or the error reason).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "textroute_api_batch_size",
            "Items per model call; above 1 for one-text requests means requests shared a batch.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "textroute_api_inference_seconds",
            "Seconds per model call (one batch).",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "textroute_api_model_ready",
            "1 when the model is loaded and serving, else 0.",
            ["model"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "textroute_api_model_info",
            "Always 1; the labels name the loaded artifact.",
            ["model", "name", "version", "backend"],
            registry=self.registry,
        )

        self.onnx_graphs = onnx_graphs_gauge(self.registry)

    def observe_batch(self, model: str, size: int, seconds: float) -> None:
        """Record one model call."""
        self.batch_size.labels(model=model).observe(size)
        self.inference_seconds.labels(model=model).observe(seconds)

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return generate_latest(self.registry)
