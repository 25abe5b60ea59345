"""Prometheus metrics of the routing worker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class StreamMetrics:
    """The worker's counters, histograms and gauges, on their own registry (one per worker)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "textroute_messages_in_total", "Records read, by message kind.", ["kind"], registry=r
        )
        self.messages_routed = Counter(
            "textroute_messages_routed_total",
            "Routing events produced, by message kind and route.",
            ["kind", "route"],
            registry=r,
        )
        self.dead_letters = Counter(
            "textroute_dead_letters_total",
            "Dead-letter records, by reason.",
            ["reason"],
            registry=r,
        )
        self.batch_size = Histogram(
            "textroute_batch_size", "Records per micro-batch.", buckets=_BATCH_BUCKETS, registry=r
        )
        self.inference_seconds = Histogram(
            "textroute_inference_seconds",
            "Model time per batch, by model (classifier, ner).",
            ["model"],
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "textroute_batch_seconds",
            "Time to decode, infer, route and produce one batch.",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.end_to_end_seconds = Histogram(
            "textroute_end_to_end_seconds",
            "From the inbound record's Kafka timestamp to its routing event being produced.",
            buckets=_SECONDS_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            "textroute_consumer_lag",
            "Records behind the high watermark, by topic and partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.model_version = Gauge(
            "textroute_model_info",
            "1 for the model version in use, by model role, name and version.",
            ["role", "name", "version"],
            registry=r,
        )
        self.model_reloads = Counter(
            "textroute_model_reloads_total",
            "Attempts to load a new model version, by role and result.",
            ["role", "result"],
            registry=r,
        )

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics over HTTP in a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)
