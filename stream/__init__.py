"""The real-time router: Kafka in, batched inference, routing events out."""

from stream.broker import EmbeddedBroker, resolve_broker_bin
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings, WorkerSettings
from stream.models import ReloadingModels, inference_loader
from stream.processor import BatchProcessor, BatchResult, InboundRecord, ModelSet
from stream.routing import Router, RoutingRules, load_rules

__all__ = [
    "BatchProcessor",
    "BatchResult",
    "BrokerSettings",
    "EmbeddedBroker",
    "EmbeddedBrokerSettings",
    "InboundRecord",
    "ModelSet",
    "ReloadingModels",
    "Router",
    "RoutingRules",
    "TopicSettings",
    "WorkerSettings",
    "inference_loader",
    "load_rules",
    "resolve_broker_bin",
]
