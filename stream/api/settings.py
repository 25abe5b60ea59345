"""Settings of the HTTP API, read from TEXTROUTE_API_* environment variables and CLI flags."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream.config import BrokerSettings, TopicSettings


class ApiSettings(BaseSettings):
    """Where the API listens, which models it serves, its input limits and its batching."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTROUTE_API_", extra="ignore", protected_namespaces=()
    )

    host: str = Field(
        default="127.0.0.1",
        description="Interface to bind; 0.0.0.0 in a container. Anything but loopback needs an "
        "API key, or `insecure`.",
    )
    port: int = Field(default=8000, ge=0, le=65535, description="TCP port; 0 picks a free one.")
    classifier_dir: Path = Field(
        default=Path("models/classifier"), description="Classifier artifact directory."
    )
    ner_dir: Path | None = Field(
        default=Path("models/ner"),
        description="NER artifact directory; empty disables /v1/entities and entities in routes.",
    )
    rules_path: Path | None = Field(
        default=None, description="Routing rules YAML; unset uses the stream's default rules."
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="When set, every endpoint but /healthz, /readyz, /metrics and the docs needs "
        "this key, as `Authorization: Bearer KEY` or in the API-key header.",
    )
    api_key_file: Path | None = Field(
        default=None,
        description="A file holding the API key (a mounted secret); surrounding whitespace is "
        "ignored. Instead of api_key, not with it.",
    )
    api_key_header: str = Field(default="X-API-Key", min_length=1)
    insecure: bool = Field(
        default=False,
        description="Serve on a non-loopback address without an API key; refused otherwise.",
    )
    max_concurrent_requests: int = Field(
        default=64,
        gt=0,
        description="Most requests in progress at once; beyond it a request gets 503 at once.",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0.0, description="A request still unanswered after this gets 504."
    )
    max_body_bytes: int = Field(
        default=1_048_576, gt=0, description="Requests with a larger body get 413."
    )
    max_items: int = Field(
        default=64, gt=0, description="Most texts or messages one request may carry."
    )
    max_text_chars: int = Field(
        default=20_000, gt=0, description="Longest text (in characters) one item may have."
    )
    batching: bool = Field(
        default=True, description="Merge items of concurrent requests into shared model batches."
    )
    batch_max_size: int = Field(default=32, gt=0, description="Most items in one model call.")
    batch_queue_max_items: int = Field(
        default=1024,
        gt=0,
        description="Most items waiting for one model, across requests; a request that would "
        "pass it gets 503 at once instead of queueing.",
    )
    batch_max_wait_ms: float = Field(
        default=5.0,
        ge=0.0,
        le=1000.0,
        description="How long the first item of a batch waits for other requests to join it.",
    )
    inference_threads: int = Field(
        default=1,
        gt=0,
        description="Threads calling the models; one keeps model calls from fighting for cores.",
    )
    reload_interval_s: float = Field(
        default=10.0,
        ge=0.0,
        description="How often to look for a new artifact version and swap it in; 0: never.",
    )
    docs: bool = Field(default=True, description="Serve OpenAPI docs at /docs and /openapi.json.")
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Log level of the API and uvicorn."
    )
    log_json: bool = Field(default=True, description="JSON log lines; off: human-readable.")
    access_log: bool = Field(default=True, description="One log line per HTTP request.")
    feedback: bool = Field(
        default=True,
        description="Take reviewers' feedback at POST /v1/feedback and produce it to the "
        "feedback topic (TEXTROUTE_TOPIC_FEEDBACK) on the broker of TEXTROUTE_BROKER_*; off, "
        "or with no broker answering, the endpoint answers 503.",
    )
    broker: BrokerSettings = Field(
        default_factory=BrokerSettings,
        description="The Kafka broker feedback goes to (TEXTROUTE_BROKER_*).",
    )
    topics: TopicSettings = Field(
        default_factory=TopicSettings, description="Topic names (TEXTROUTE_TOPIC_*)."
    )

    _file_key: SecretStr | None = PrivateAttr(default=None)

    @field_validator("ner_dir", "rules_path", "api_key", "api_key_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty env var (TEXTROUTE_API_NER_DIR=) must mean "off", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _queue_holds_a_request(self) -> ApiSettings:
        if self.batch_queue_max_items < self.max_items:
            raise ValueError(
                f"batch_queue_max_items ({self.batch_queue_max_items}) must be at least "
                f"max_items ({self.max_items}), or a full request could never be queued"
            )
        return self

    @model_validator(mode="after")
    def _read_key_file(self) -> ApiSettings:
        path = self.api_key_file
        if path is None:
            return self
        if self.api_key is not None:
            raise ValueError("set api_key or api_key_file, not both")
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"api_key_file {path} cannot be read: {exc}") from exc
        if not key:
            raise ValueError(f"api_key_file {path} is empty")
        self._file_key = SecretStr(key)
        return self

    def effective_api_key(self) -> SecretStr | None:
        """The key clients must send: api_key, or the contents of api_key_file; None: no auth."""
        return self.api_key if self.api_key is not None else self._file_key

    def binds_loopback(self) -> bool:
        """Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost): this machine only."""
        host = self.host.strip().strip("[]").lower()
        if host == "localhost" or host.endswith(".localhost"):
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            # A host name other than localhost may resolve to any interface.
            return False

    def model_dirs(self) -> dict[str, Path]:
        """The configured artifact directories by role (classifier, and ner when set)."""
        dirs = {"classifier": self.classifier_dir}
        if self.ner_dir is not None:
            dirs["ner"] = self.ner_dir
        return dirs
