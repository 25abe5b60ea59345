"""`textroute serve`: run the HTTP API with uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (env TEXTROUTE_API_HOST, default 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="TCP port (env TEXTROUTE_API_PORT, default 8000).")
    ] = None,
    classifier: Annotated[
        Path | None,
        typer.Option(
            help="Classifier artifact dir "
            "(env TEXTROUTE_API_CLASSIFIER_DIR, default models/classifier).",
        ),
    ] = None,
    ner: Annotated[
        Path | None,
        typer.Option(help="NER artifact dir (env TEXTROUTE_API_NER_DIR, default models/ner)."),
    ] = None,
    no_ner: Annotated[
        bool, typer.Option("--no-ner", help="Serve without an NER model (no /v1/entities).")
    ] = False,
    rules: Annotated[
        Path | None,
        typer.Option(
            help="Routing rules YAML (env TEXTROUTE_API_RULES_PATH; default: the packaged rules)."
        ),
    ] = None,
    batching: Annotated[
        bool | None,
        typer.Option(
            "--batching/--no-batching",
            help="Share model batches across requests (env TEXTROUTE_API_BATCHING, default on).",
        ),
    ] = None,
    batch_max_size: Annotated[
        int | None,
        typer.Option(help="Most items per model call (env TEXTROUTE_API_BATCH_MAX_SIZE)."),
    ] = None,
    batch_max_wait_ms: Annotated[
        float | None,
        typer.Option(
            help="Longest wait for a batch to fill (env TEXTROUTE_API_BATCH_MAX_WAIT_MS)."
        ),
    ] = None,
    max_items: Annotated[
        int | None, typer.Option(help="Most items per request (env TEXTROUTE_API_MAX_ITEMS).")
    ] = None,
    max_text_chars: Annotated[
        int | None, typer.Option(help="Longest text per item (env TEXTROUTE_API_MAX_TEXT_CHARS).")
    ] = None,
    max_body_bytes: Annotated[
        int | None, typer.Option(help="Largest request body (env TEXTROUTE_API_MAX_BODY_BYTES).")
    ] = None,
    max_concurrent: Annotated[
        int | None,
        typer.Option(
            help="Most requests in progress; more get 503 "
            "(env TEXTROUTE_API_MAX_CONCURRENT_REQUESTS, default 64)."
        ),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds before an unanswered request gets 504 "
            "(env TEXTROUTE_API_REQUEST_TIMEOUT_S, default 30)."
        ),
    ] = None,
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            help="File holding the API key, e.g. a mounted secret "
            "(env TEXTROUTE_API_API_KEY_FILE; or the key itself in TEXTROUTE_API_API_KEY)."
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Serve a non-loopback --host without an API key (env TEXTROUTE_API_INSECURE); "
            "refused otherwise.",
        ),
    ] = False,
    log_level: Annotated[
        str | None,
        typer.Option(help="debug, info, warning or error (env TEXTROUTE_API_LOG_LEVEL)."),
    ] = None,
) -> None:
    """Serve the HTTP API (classify, entities, route) with uvicorn.

    Also /healthz, /readyz, /metrics and OpenAPI docs at /docs, which need no key. The API key
    is read from TEXTROUTE_API_API_KEY or the file TEXTROUTE_API_API_KEY_FILE names, so it
    never shows in the process list; a host other than loopback is refused without one.
    """
    from pydantic import ValidationError

    from stream._pydantic import summarize_validation_error
    from stream.api.server import serve as run
    from stream.api.settings import ApiSettings
    from stream.errors import StreamConfigError

    flags: dict[str, Any] = {
        "host": host,
        "port": port,
        "classifier_dir": classifier,
        "ner_dir": ner,
        "rules_path": rules,
        "batching": batching,
        "batch_max_size": batch_max_size,
        "batch_max_wait_ms": batch_max_wait_ms,
        "max_items": max_items,
        "max_text_chars": max_text_chars,
        "max_body_bytes": max_body_bytes,
        "max_concurrent_requests": max_concurrent,
        "request_timeout_s": request_timeout,
        "api_key_file": api_key_file,
        "log_level": log_level,
    }
    overrides = {name: value for name, value in flags.items() if value is not None}
    if no_ner:
        overrides["ner_dir"] = None
    if insecure:
        overrides["insecure"] = True
    try:
        settings = ApiSettings(**overrides)
    except ValidationError as exc:
        raise StreamConfigError(f"invalid API settings: {summarize_validation_error(exc)}") from exc
    run(settings)


def register(app: typer.Typer) -> None:
    """Add `serve` to the textroute CLI."""
    app.command("serve")(serve)
