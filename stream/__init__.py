"""The real-time router: Kafka in, batched inference, routing events out."""

from stream.broker import EmbeddedBroker, resolve_broker_bin
from stream.config import BrokerSettings, EmbeddedBrokerSettings, TopicSettings, WorkerSettings
from stream.model_set import ModelSet, infer_batch
from stream.models import ReloadingModels, inference_loader
from stream.processor import BatchProcessor, BatchResult, InboundRecord
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
    "infer_batch",
    "inference_loader",
    "load_rules",
    "resolve_broker_bin",
]
