"""Prometheus metrics of the routing worker."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from schemas.manifest import ModelManifest


def onnx_graphs_gauge(registry: CollectorRegistry) -> Gauge:
    """textroute_onnx_graphs_loaded in `registry` (the worker's or the API's), read when scraped."""
    gauge = Gauge(
        "textroute_onnx_graphs_loaded",
        "ONNX graphs this process holds a session of; each graph is loaded once however many "
        "pipelines, roles or endpoints serve it.",
        registry=registry,
    )
    gauge.set_function(_loaded_graphs)
    return gauge


def _loaded_graphs() -> float:
    # Imported when scraped, not with this module: commands that load no model (feedback,
    # review-store) import the metrics too and need not pay for inference's imports.
    from inference import loaded_graphs

    return float(loaded_graphs())


_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
_SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
#: Confidence buckets: by 0.1 up to a half, by 0.05 above, where review thresholds sit.
_CONFIDENCE_BUCKETS = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
)  # fmt: skip


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
        # Drift: what the models predict in production, beside what they were trained on.
        self.prediction_confidence = Histogram(
            "textroute_prediction_confidence",
            "The classifier's confidence in its top label, per routed message, by pipeline.",
            ["pipeline"],
            buckets=_CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.predicted_labels = Counter(
            "textroute_predicted_labels_total",
            "Labels given to routed messages (every label of a multi-label one), by pipeline.",
            ["pipeline", "label"],
            registry=r,
        )
        self.review = Counter(
            "textroute_review_total",
            "Routed messages sent to human review, by pipeline (review rate: this over "
            "textroute_routed_by_pipeline_total).",
            ["pipeline"],
            registry=r,
        )
        self.routed_by_pipeline = Counter(
            "textroute_routed_by_pipeline_total",
            "Routing events built, by pipeline.",
            ["pipeline"],
            registry=r,
        )
        self.training_label_share = Gauge(
            "textroute_training_label_share",
            "Share of each label in the active classifier's training data (or, when its "
            "manifest lacks that, in its test or validation split), by pipeline.",
            ["pipeline", "label"],
            registry=r,
        )
        # Shadow: a candidate classifier beside the active one, never routed by.
        self.shadow_predictions = Counter(
            "textroute_shadow_predictions_total",
            "Messages the shadow candidate classified, by pipeline and whether it agreed with "
            "the active classifier (same top label; multi-label: same label set).",
            ["pipeline", "agree"],
            registry=r,
        )
        self.shadow_failures = Counter(
            "textroute_shadow_failures_total",
            "Routed messages left without a shadow record because the candidate (or its "
            "reload) failed, by pipeline; routing is never affected.",
            ["pipeline"],
            registry=r,
        )
        # The review loop: archived messages and reviewers' feedback.
        self.feedback_total = Counter(
            "textroute_feedback_total",
            "Feedback records taken in, by pipeline and verdict (agree, corrected, unjoined).",
            ["pipeline", "verdict"],
            registry=r,
        )
        self.onnx_graphs = onnx_graphs_gauge(r)
        self.feedback_pending = Gauge(
            "textroute_feedback_pending",
            "Feedback waiting for its message's archive record.",
            registry=r,
        )
        self.archived_messages = Counter(
            "textroute_archived_messages_total",
            "Archived messages stored by the review store.",
            registry=r,
        )
        self.archive_dropped = Counter(
            "textroute_archive_dropped_total",
            "Archive records dropped, by reason (e.g. output_too_large: the worker could not "
            "produce it; the routing event still went).",
            ["reason"],
            registry=r,
        )
        self._share_lock = threading.Lock()
        self._share_labels: dict[str, set[str]] = {}

    def set_training_label_share(self, pipeline: str, shares: Mapping[str, float]) -> None:
        """Publish a pipeline's training label shares, dropping labels its previous classifier
        had and this one lacks."""
        with self._share_lock:
            old = self._share_labels.get(pipeline, set())
            for label in old - set(shares):
                self.training_label_share.remove(pipeline, label)
            for label, share in shares.items():
                self.training_label_share.labels(pipeline, label).set(share)
            self._share_labels[pipeline] = set(shares)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics over HTTP in a daemon thread."""
        start_http_server(port, addr=addr, registry=self.registry)


#: Keys of a manifest's `metrics` that may hold the training data's label distribution
#: (label -> rows or share), looked up in this order.
TRAIN_DISTRIBUTION_KEYS = ("train_label_distribution", "label_distribution")
#: Evaluation splits whose per-class `support` stands in for the training distribution.
SUPPORT_SPLITS = ("test", "validation")


def training_label_share(manifest: ModelManifest) -> dict[str, float]:
    """Label -> its share of the classifier's training data, from its manifest: the training
    label distribution when the manifest records one (metrics["train_label_distribution"]),
    else the per-class `support` of its test or validation split (metrics[split]["per_class"],
    or "per_label" for a multi-label model), normalised to sum to 1. Labels with no data are
    left out; empty when the manifest has none of these."""
    classes = list(manifest.class_labels or manifest.labels)
    metrics = manifest.metrics
    counts: dict[str, float] = {}
    for key in TRAIN_DISTRIBUTION_KEYS:
        counts = _counts(metrics.get(key), classes, field=None)
        if counts:
            break
    else:
        for split in SUPPORT_SPLITS:
            section = metrics.get(split)
            if not isinstance(section, Mapping):
                continue
            for per in ("per_class", "per_label"):
                counts = _counts(section.get(per), classes, field="support")
                if counts:
                    break
            if counts:
                break
    total = sum(counts.values())
    if total <= 0:
        return {}
    return {label: n / total for label, n in counts.items()}


def _counts(table: Any, classes: list[str], *, field: str | None) -> dict[str, float]:
    """Positive counts of the model's classes in `table` (label -> number, or label -> a
    mapping holding `field`); anything else is skipped."""
    if not isinstance(table, Mapping):
        return {}
    out: dict[str, float] = {}
    for label in classes:
        value = table.get(label)
        if field is not None:
            value = value.get(field) if isinstance(value, Mapping) else None
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if value > 0 and value == value and value != float("inf"):
            out[label] = float(value)
    return out
