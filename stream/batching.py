"""Cross-caller micro-batching: concurrent awaiters share one call of a blocking batch function."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from stream.errors import BatcherClosedError, BatchQueueFullError, BatchSizeMismatchError

T = TypeVar("T")
R = TypeVar("R")
T_contra = TypeVar("T_contra", contravariant=True)
R_co = TypeVar("R_co", covariant=True)

BatchFn = Callable[[Sequence[T]], Sequence[R]]
BatchObserver = Callable[[int, float], None]
"""Called after each batch with its size and the seconds the batch function took."""


class BatchRunner(Protocol[T_contra, R_co]):
    """Runs a batch function for the items of one caller; implementations may merge callers."""

    async def run(self, items: Sequence[T_contra]) -> Sequence[R_co]:
        """Results for `items`, in order."""
        ...

    async def aclose(self) -> None:
        """Stop accepting work and finish or fail what is queued."""
        ...


async def _call_in_executor(
    fn: BatchFn[T, R], items: Sequence[T], executor: Executor | None
) -> tuple[list[R], float]:
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    results = list(await loop.run_in_executor(executor, fn, items))
    elapsed = time.perf_counter() - started
    if len(results) != len(items):
        raise BatchSizeMismatchError(
            f"batch function returned {len(results)} results for {len(items)} items; "
            "it must return exactly one result per item"
        )
    return results, elapsed


class _PendingBound:
    """Counts the items callers are waiting on and refuses work beyond `limit` (None: no bound).

    Without a bound, a burst of callers faster than the model grows the queue (and memory)
    without end, and every caller waits longer; refusing at once lets clients back off.
    """

    def __init__(self, limit: int | None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"max_pending must be at least 1, got {limit}")
        self.limit = limit
        self.pending = 0

    @contextlib.contextmanager
    def hold(self, count: int) -> Iterator[None]:
        limit = self.limit
        if limit is not None and self.pending + count > limit:
            if count > limit:
                raise BatchQueueFullError(
                    f"{count} items in one call can never fit: at most {limit} items may wait "
                    "for the model at once; send fewer items per call"
                )
            raise BatchQueueFullError(
                f"{self.pending} items already wait for the model and {count} more would pass "
                f"the limit of {limit}; retry shortly"
            )
        self.pending += count
        try:
            yield
        finally:
            self.pending -= count


class DirectRunner(Generic[T, R]):
    """No cross-caller batching: each caller's items go to the batch function on their own."""

    def __init__(
        self,
        fn: BatchFn[T, R],
        *,
        max_size: int,
        executor: Executor | None = None,
        observer: BatchObserver | None = None,
        max_pending: int | None = None,
    ) -> None:
        self._fn = fn
        self._max_size = max_size
        self._executor = executor
        self._observer = observer
        # The executor's own queue is unbounded, so callers are counted here instead.
        self._bound = _PendingBound(max_pending)

    @property
    def pending(self) -> int:
        """Items of callers still waiting for their results."""
        return self._bound.pending

    async def run(self, items: Sequence[T]) -> list[R]:
        """Results for `items`, in order; raises BatchQueueFullError when over `max_pending`."""
        out: list[R] = []
        with self._bound.hold(len(items)):
            # Chunking keeps one caller from sending the model a batch bigger than configured.
            for start in range(0, len(items), self._max_size):
                chunk = items[start : start + self._max_size]
                results, elapsed = await _call_in_executor(self._fn, chunk, self._executor)
                if self._observer is not None:
                    self._observer(len(chunk), elapsed)
                out.extend(results)
        return out

    async def aclose(self) -> None:
        return None


@dataclass
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]


class MicroBatcher(Generic[T, R]):
    """Merge items from concurrent callers into batches of at most `max_size`.

    The first item of a batch waits at most `max_wait_s` for company; a full batch goes at once.
    The batch function runs in `executor` so the event loop keeps serving requests meanwhile.
    An exception of the batch function fails every caller of that batch, and only that batch.
    With `max_pending`, at most that many items wait (queued or in the running batch); a caller
    that would pass it gets BatchQueueFullError at once instead of a place in the queue.
    """

    def __init__(
        self,
        fn: BatchFn[T, R],
        *,
        max_size: int,
        max_wait_s: float,
        executor: Executor | None = None,
        observer: BatchObserver | None = None,
        max_pending: int | None = None,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must not be negative, got {max_wait_s}")
        self._fn = fn
        self._max_size = max_size
        self._max_wait_s = max_wait_s
        self._executor = executor
        self._observer = observer
        self._queue: asyncio.Queue[_Pending[T, R]] = asyncio.Queue()
        self._bound = _PendingBound(max_pending)
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Items of callers still waiting for their results (queued or in the running batch)."""
        return self._bound.pending

    async def run(self, items: Sequence[T]) -> list[R]:
        """Results for `items`, in order; raises BatchQueueFullError when over `max_pending`."""
        if self._closed:
            raise BatcherClosedError(
                "the micro-batcher is closed (shutting down); retry on another instance"
            )
        with self._bound.hold(len(items)):
            if self._task is None:
                self._task = asyncio.create_task(self._loop(), name="micro-batcher")
            loop = asyncio.get_running_loop()
            pending = [_Pending(item, loop.create_future()) for item in items]
            for p in pending:
                self._queue.put_nowait(p)
            try:
                return list(await asyncio.gather(*(p.future for p in pending)))
            except BaseException:
                # A failed or cancelled caller withdraws its other items so none run for
                # nobody, and reads their exceptions so asyncio does not log them as never
                # retrieved.
                for p in pending:
                    if p.future.done() and not p.future.cancelled():
                        p.future.exception()
                    p.future.cancel()
                raise

    async def aclose(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            self._queue.get_nowait().future.cancel()

    async def _collect(self) -> list[_Pending[T, R]]:
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self._max_wait_s
        while len(batch) < self._max_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            # asyncio's own TimeoutError: on Python 3.10 it is not the builtin one.
            except asyncio.TimeoutError:
                break
        return [p for p in batch if not p.future.done()]

    async def _loop(self) -> None:
        while True:
            batch = await self._collect()
            if not batch:
                continue
            try:
                results, elapsed = await _call_in_executor(
                    self._fn, [p.item for p in batch], self._executor
                )
            except asyncio.CancelledError:
                for p in batch:
                    p.future.cancel()
                raise
            except Exception as exc:
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            if self._observer is not None:
                self._observer(len(batch), elapsed)
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)


def batch_runner(
    fn: BatchFn[T, R],
    *,
    max_size: int,
    max_wait_s: float,
    cross_caller: bool,
    executor: Executor | None = None,
    observer: BatchObserver | None = None,
    max_pending: int | None = None,
) -> BatchRunner[T, R]:
    """A MicroBatcher when `cross_caller` is on, else a DirectRunner with the same limits."""
    if cross_caller:
        return MicroBatcher(
            fn,
            max_size=max_size,
            max_wait_s=max_wait_s,
            executor=executor,
            observer=observer,
            max_pending=max_pending,
        )
    return DirectRunner(
        fn, max_size=max_size, executor=executor, observer=observer, max_pending=max_pending
    )


__all__ = [
    "BatchFn",
    "BatchObserver",
    "BatchRunner",
    "DirectRunner",
    "MicroBatcher",
    "batch_runner",
]
