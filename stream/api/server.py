"""Run the API with uvicorn: in the foreground (`textroute serve`) or in a background thread."""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import TYPE_CHECKING

import structlog

from stream.api.app import create_app
from stream.api.errors import ApiConfigError, ServerStartError
from stream.api.settings import ApiSettings
from stream.logs import configure_logging
from stream.models import Loader

if TYPE_CHECKING:
    import uvicorn

log = structlog.get_logger("textroute.api")


def check_exposure(settings: ApiSettings) -> None:
    """Refuse to serve a non-loopback address without an API key, unless `insecure` says so."""
    if settings.binds_loopback() or settings.effective_api_key() is not None:
        return
    if settings.insecure:
        log.warning(
            "api.insecure",
            host=settings.host,
            message="serving without an API key on a non-loopback address",
        )
        return
    raise ApiConfigError(
        f"refusing to serve on {settings.host}, which is not a loopback address, without an "
        "API key: set TEXTROUTE_API_API_KEY or TEXTROUTE_API_API_KEY_FILE, or pass --insecure "
        "(TEXTROUTE_API_INSECURE=true) to let anyone who can reach it use it"
    )


def _config(settings: ApiSettings, loader: Loader | None) -> uvicorn.Config:
    import uvicorn

    # Checked here, where both ways of serving start, so neither binds before it is safe.
    check_exposure(settings)
    return uvicorn.Config(
        create_app(settings, loader),
        host=settings.host,
        port=settings.port,
        # None keeps uvicorn's loggers on the root handler that configure_logging set up.
        log_config=None,
        log_level=settings.log_level.lower(),
        access_log=settings.access_log,
        server_header=False,
        timeout_graceful_shutdown=10,
    )


def serve(settings: ApiSettings, *, loader: Loader | None = None) -> None:
    """Serve until SIGINT/SIGTERM; in-flight requests get up to 10 s to finish.

    Raises ApiConfigError, before binding, for a non-loopback host without an API key.
    """
    import uvicorn

    configure_logging(settings.log_level.upper(), json=settings.log_json)
    uvicorn.Server(_config(settings, loader)).run()


class BackgroundServer:
    """The API on uvicorn in a daemon thread, for embedding, tests and benchmarks.

    `with BackgroundServer(settings) as server:` returns once the socket listens (models may
    still be loading: poll /readyz); `server.url` is its base URL, with the real port when
    `settings.port` is 0.
    """

    def __init__(
        self, settings: ApiSettings, *, loader: Loader | None = None, start_timeout_s: float = 20.0
    ) -> None:
        import uvicorn

        self.settings = settings
        self._server = uvicorn.Server(_config(settings, loader))
        self._thread = threading.Thread(target=self._server.run, name="textroute-api", daemon=True)
        self._start_timeout_s = start_timeout_s
        self.port = settings.port

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def start(self) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + self._start_timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise ServerStartError(
                    f"the API did not start listening on {self.settings.host}:"
                    f"{self.settings.port} within {self._start_timeout_s:.0f} s; "
                    "is the port in use? See the log above."
                )
            time.sleep(0.02)
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
