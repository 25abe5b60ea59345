"""A TCP proxy in front of a Kafka broker that can hold or cut clients' Produce requests.

Fault injection for the tests and `bench/chaos.py`: the broker advertises the proxy's address
(`EmbeddedBrokerSettings.advertised_port`), so every client connection passes through it. The
proxy reads the client side frame by frame (Kafka requests are a 4-byte big-endian length, then
api_key, api_version, correlation_id and client_id), so it can tell a Produce request, and the
client that sent it, from the rest.

Held: once a matching client sends a Produce, that connection's requests wait in the proxy,
in order, until `release()`; other connections (fetches, offset commits, the test's own
producer) flow on. That is a slow or stalled broker as one worker's producer sees it. Frames
still held when their client disconnects are dropped: they never reached the broker.
Delayed: each Produce of a matching client waits a few seconds before it goes on, and that
connection's later requests queue behind it, as they would behind a slow broker.
Cut: a matching Produce closes its connection instead, a broken link.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

PRODUCE_API_KEY = 0
_HEADER = struct.Struct(">hhih")  # api_key, api_version, correlation_id, client_id length


@dataclass(frozen=True)
class RequestHeader:
    """The fixed start of a Kafka request header."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def parse_header(frame: bytes) -> RequestHeader | None:
    """The header of one request frame (without its length prefix); None when too short."""
    if len(frame) < _HEADER.size:
        return None
    api_key, api_version, correlation_id, id_len = _HEADER.unpack_from(frame)
    client_id = None
    if id_len >= 0:
        raw = frame[_HEADER.size : _HEADER.size + id_len]
        client_id = raw.decode("utf-8", errors="replace")
    return RequestHeader(api_key, api_version, correlation_id, client_id)


@dataclass
class ProxyStats:
    """What the proxy has seen and done, for assertions and the chaos report."""

    connections: int = 0
    produce_requests: int = 0
    held_requests: int = 0
    delayed_requests: int = 0
    cut_connections: int = 0
    dropped_frames: int = 0
    client_ids: set[str] = field(default_factory=set)


class KafkaFaultProxy:
    """Forward 127.0.0.1:`port` to the broker at `upstream`, with faults on demand.

    It runs its own event loop on a daemon thread, so blocking code (a broker starting, a
    benchmark's main loop) and async tests alike can drive it; the fault switches are
    thread-safe. Use it as a context manager, or `start()` / `stop()`.
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = port
        self.stats = ProxyStats()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._released = asyncio.Event()
        self._released.set()
        self._hold_prefix: str | None = None
        self._cut_prefix: str | None = None
        self._delay: tuple[str, float] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> KafkaFaultProxy:
        """Listen (on a free port when `port` is 0) and serve on the proxy's own thread."""
        self._thread.start()
        self._call(self._listen())
        return self

    def stop(self) -> None:
        """Release what is held, close every connection and stop the thread."""
        if not self._thread.is_alive():
            return
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def __enter__(self) -> KafkaFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self, client_id_prefix: str = "") -> None:
        """From now on, hold the connections of matching clients from their next Produce."""

        def switch() -> None:
            self._hold_prefix = client_id_prefix
            self._released.clear()

        self._loop.call_soon_threadsafe(switch)

    def release(self) -> None:
        """Let every held request through, in order, and stop holding."""

        def switch() -> None:
            self._hold_prefix = None
            self._released.set()

        self._loop.call_soon_threadsafe(switch)

    def delay(self, seconds: float, client_id_prefix: str = "") -> None:
        """Hold each Produce of matching clients `seconds` before sending it on; 0 stops."""
        value = (client_id_prefix, seconds) if seconds > 0 else None
        self._loop.call_soon_threadsafe(setattr, self, "_delay", value)

    def cut(self, client_id_prefix: str = "") -> None:
        """Close the connection of a matching client instead of forwarding its Produce."""
        self._loop.call_soon_threadsafe(setattr, self, "_cut_prefix", client_id_prefix)

    def heal(self) -> None:
        """Stop cutting."""
        self._loop.call_soon_threadsafe(setattr, self, "_cut_prefix", None)

    @property
    def holding(self) -> bool:
        return not self._released.is_set()

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        self._released.set()
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    def _matches(self, prefix: str | None, header: RequestHeader) -> bool:
        return prefix is not None and (header.client_id or "").startswith(prefix)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.stats.connections += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        upstream = asyncio.ensure_future(self._requests(client_r, broker_w))
        downstream = asyncio.ensure_future(self._responses(broker_r, client_w))
        for task in (upstream, downstream):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # When either side ends, end the other: a held request of a closed client is dropped.
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)
        for task in (upstream, downstream):
            task.cancel()
        for writer in (client_w, broker_w):
            writer.close()

    async def _requests(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read ahead of the forwarding, so a client that disconnects while its requests are
        # held is noticed at once and what it had sent is dropped, not sent on at release.
        frames: asyncio.Queue[bytes] = asyncio.Queue()
        forward = asyncio.ensure_future(self._forward(frames, writer))
        read = asyncio.ensure_future(self._read_frames(reader, frames))
        try:
            await asyncio.wait({forward, read}, return_when=asyncio.FIRST_COMPLETED)
            if read.done() and not forward.done():
                # The client is gone; give frames already released a moment to go out.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._drained(frames), 0.5)
        finally:
            self.stats.dropped_frames += frames.qsize()
            for task in (forward, read):
                task.cancel()
            for task in (forward, read):
                with contextlib.suppress(BaseException):
                    await task

    async def _drained(self, frames: asyncio.Queue[bytes]) -> None:
        while not frames.empty() and self._released.is_set():
            await asyncio.sleep(0.01)
        if not frames.empty():
            raise asyncio.TimeoutError

    @staticmethod
    async def _read_frames(reader: asyncio.StreamReader, frames: asyncio.Queue[bytes]) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                size = await reader.readexactly(4)
                frames.put_nowait(size + await reader.readexactly(struct.unpack(">i", size)[0]))

    async def _forward(self, frames: asyncio.Queue[bytes], writer: asyncio.StreamWriter) -> None:
        held = False
        with contextlib.suppress(ConnectionError):
            while True:
                frame = await frames.get()
                header = parse_header(frame[4:])
                if header is not None and header.client_id:
                    self.stats.client_ids.add(header.client_id)
                if header is not None and header.api_key == PRODUCE_API_KEY:
                    self.stats.produce_requests += 1
                    if self._matches(self._cut_prefix, header):
                        self.stats.cut_connections += 1
                        return
                    held = held or self._matches(self._hold_prefix, header)
                    delay = self._delay
                    if delay is not None and self._matches(delay[0], header):
                        self.stats.delayed_requests += 1
                        await asyncio.sleep(delay[1])
                if held and not self._released.is_set():
                    self.stats.held_requests += 1
                    try:
                        await self._released.wait()
                    except asyncio.CancelledError:
                        self.stats.dropped_frames += 1
                        raise
                held = held and not self._released.is_set()
                writer.write(frame)
                await writer.drain()

    @staticmethod
    async def _responses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
