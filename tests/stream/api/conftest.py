"""API fixtures: the real app on uvicorn, on a free loopback port, serving the tiny ONNX models."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from stream.api import ApiSettings, BackgroundServer
from stream.models import Loader, inference_loader

StartApi = Callable[..., BackgroundServer]

# Small limits so the limit tests need only small requests.
TEST_LIMITS: dict[str, Any] = {
    "max_items": 8,
    "max_text_chars": 400,
    "max_body_bytes": 16_000,
}


def api_settings(classifier: Path, ner: Path | None, **overrides: Any) -> ApiSettings:
    """Settings for a test server: loopback, free port, quiet logs, no model reload."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "classifier_dir": classifier,
        "ner_dir": ner,
        "log_level": "warning",
        "log_json": False,
        "access_log": False,
        "reload_interval_s": 0,
        **TEST_LIMITS,
    }
    values.update(overrides)
    return ApiSettings(**values)


def wait_ready(url: str, *, timeout_s: float = 60.0) -> httpx.Response:
    """Poll /readyz until it answers 200 or says the load failed."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = httpx.get(f"{url}/readyz", timeout=5)
        if response.status_code == 200 or response.json().get("status") == "failed":
            return response
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {timeout_s} s: {response.text}")
        time.sleep(0.05)


def sample(metrics_text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text output; 0.0 when it is not there."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(metrics_text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """The status code and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection without an answer: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), body


def raw_post_head(path: str, length: int, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode("ascii")


class Gate:
    """Holds every model call until released, so requests stay in flight as long as a test
    needs; `entered` is set once a call is waiting at the gate."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def wait(self) -> None:
        self.entered.set()
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never opened the gate")

    def loader(self) -> Loader:
        """The real inference loader, its models' calls held at this gate."""
        real = inference_loader()

        def load(path: Path) -> Any:
            return GatedModel(real(path), self)

        return load


class GatedModel:
    """A real loaded model whose classify and entities calls wait at a Gate first."""

    def __init__(self, model: Any, gate: Gate) -> None:
        self._model = model
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def classify(self, texts: Sequence[object]) -> Any:
        self._gate.wait()
        return self._model.classify(texts)

    def entities(self, texts: Sequence[object]) -> Any:
        self._gate.wait()
        return self._model.entities(texts)


@pytest.fixture
def gate() -> Iterator[Gate]:
    """A Gate that is opened after the test, so no inference thread is left waiting."""
    g = Gate()
    yield g
    g.release.set()


@pytest.fixture
def start_api(tiny_classifier_artifact: Path, tiny_ner_artifact: Path) -> Iterator[StartApi]:
    """Start servers on demand (`start_api(loader=..., **settings)`); all stop after the test."""
    servers: list[BackgroundServer] = []

    def start(*, loader: Loader | None = None, **overrides: Any) -> BackgroundServer:
        overrides.setdefault("classifier", tiny_classifier_artifact)
        overrides.setdefault("ner", tiny_ner_artifact)
        settings = api_settings(overrides.pop("classifier"), overrides.pop("ner"), **overrides)
        server = BackgroundServer(settings, loader=loader).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def api_url(tiny_classifier_artifact: Path, tiny_ner_artifact: Path) -> Iterator[str]:
    """One ready server with both tiny models, no API key, shared by a test module."""
    settings = api_settings(tiny_classifier_artifact, tiny_ner_artifact)
    with BackgroundServer(settings) as server:
        ready = wait_ready(server.url)
        assert ready.status_code == 200, ready.text
        yield server.url


@pytest.fixture
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as c:
        yield c
