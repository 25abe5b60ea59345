"""Settings of the HTTP API, read from TEXTROUTE_API_* environment variables and CLI flags."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """Where the API listens, which models it serves, its input limits and its batching."""

    model_config = SettingsConfigDict(
        env_prefix="TEXTROUTE_API_", extra="ignore", protected_namespaces=()
    )

    host: str = Field(default="127.0.0.1", description="Interface to bind; 0.0.0.0 in a container.")
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
        default=None, description="When set, /v1/* requires this key in the API-key header."
    )
    api_key_header: str = Field(default="X-API-Key", min_length=1)
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

    @field_validator("ner_dir", "rules_path", "api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # An empty env var (TEXTROUTE_API_NER_DIR=) must mean "off", not the current directory.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    def model_dirs(self) -> dict[str, Path]:
        """The configured artifact directories by role (classifier, and ner when set)."""
        dirs = {"classifier": self.classifier_dir}
        if self.ner_dir is not None:
            dirs["ner"] = self.ner_dir
        return dirs
