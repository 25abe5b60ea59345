"""Cross-caller micro-batching: who shares a batch, ordering, failures, cancellation, closing,
and the bound on waiting items."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

import pytest

from stream.batching import DirectRunner, MicroBatcher, batch_runner
from stream.errors import BatcherClosedError, BatchQueueFullError, BatchSizeMismatchError


class Recorder:
    """A batch function that records every batch it gets and answers `item!`."""

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self.fail_on = fail_on
        self._lock = threading.Lock()

    def __call__(self, items: Sequence[str]) -> list[str]:
        with self._lock:
            self.batches.append(list(items))
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"poison item {self.fail_on}")
        return [f"{item}!" for item in items]


async def test_concurrent_single_item_callers_share_one_batch() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, max_size=8, max_wait_s=0.5)
    results = await asyncio.gather(*(batcher.run([f"t{i}"]) for i in range(5)))
    await batcher.aclose()
    assert results == [[f"t{i}!"] for i in range(5)]
    assert fn.batches == [[f"t{i}" for i in range(5)]]


async def test_full_batch_goes_without_waiting_for_the_deadline() -> None:
    fn = Recorder()
    # A 60 s wait would time the test out if a full batch still waited for it.
    batcher = MicroBatcher(fn, max_size=3, max_wait_s=60.0)
    results = await asyncio.wait_for(
        asyncio.gather(*(batcher.run([f"t{i}"]) for i in range(3))), timeout=10
    )
    await batcher.aclose()
    assert results == [["t0!"], ["t1!"], ["t2!"]]
    assert fn.batches == [["t0", "t1", "t2"]]


async def test_batches_never_exceed_max_size_and_results_keep_caller_order() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, max_size=4, max_wait_s=0.05)
    many = [f"a{i}" for i in range(10)]
    first, second = await asyncio.gather(batcher.run(many), batcher.run(["b0", "b1"]))
    await batcher.aclose()
    assert first == [f"{x}!" for x in many]
    assert second == ["b0!", "b1!"]
    assert all(len(b) <= 4 for b in fn.batches)
    assert sorted(x for b in fn.batches for x in b) == sorted([*many, "b0", "b1"])


async def test_failing_batch_fails_only_its_callers_and_the_next_batch_works() -> None:
    fn = Recorder(fail_on="poison")
    batcher = MicroBatcher(fn, max_size=8, max_wait_s=0.2)
    outcomes = await asyncio.gather(
        batcher.run(["poison"]), batcher.run(["fine"]), return_exceptions=True
    )
    assert all(isinstance(o, ValueError) for o in outcomes)
    assert await batcher.run(["later"]) == ["later!"]
    await batcher.aclose()


async def test_wrong_result_count_is_reported_to_the_callers() -> None:
    batcher: MicroBatcher[str, str] = MicroBatcher(
        lambda items: ["only one"], max_size=8, max_wait_s=0.05
    )
    with pytest.raises(BatchSizeMismatchError, match="1 results for 2 items"):
        await batcher.run(["a", "b"])
    await batcher.aclose()


async def test_cancelled_caller_items_are_not_sent_to_the_batch_function() -> None:
    fn = Recorder()
    batcher = MicroBatcher(fn, max_size=8, max_wait_s=0.3)
    gone = asyncio.create_task(batcher.run(["gone"]))
    await asyncio.sleep(0)  # let it enqueue; the batch is still waiting for company
    gone.cancel()
    assert await batcher.run(["kept"]) == ["kept!"]
    await batcher.aclose()
    assert "gone" not in [x for b in fn.batches for x in b]


async def test_closed_batcher_refuses_new_work() -> None:
    batcher = MicroBatcher(Recorder(), max_size=2, max_wait_s=0.01)
    assert await batcher.run(["x"]) == ["x!"]
    await batcher.aclose()
    with pytest.raises(BatcherClosedError, match="closed"):
        await batcher.run(["y"])


async def test_observer_sees_each_batch_size() -> None:
    sizes: list[int] = []
    batcher = MicroBatcher(
        Recorder(), max_size=8, max_wait_s=0.3, observer=lambda n, s: sizes.append(n)
    )
    await asyncio.gather(batcher.run(["a"]), batcher.run(["b", "c"]))
    await batcher.aclose()
    assert sizes == [3]


async def test_direct_runner_never_merges_callers_but_chunks_large_requests() -> None:
    fn = Recorder()
    runner = DirectRunner(fn, max_size=2)
    first, second = await asyncio.gather(runner.run(["a", "b", "c"]), runner.run(["d"]))
    assert first == ["a!", "b!", "c!"]
    assert second == ["d!"]
    assert sorted(fn.batches) == [["a", "b"], ["c"], ["d"]]


def test_batch_runner_picks_the_implementation_from_cross_caller() -> None:
    fn = Recorder()
    assert isinstance(
        batch_runner(fn, max_size=4, max_wait_s=0.01, cross_caller=True), MicroBatcher
    )
    assert isinstance(
        batch_runner(fn, max_size=4, max_wait_s=0.01, cross_caller=False), DirectRunner
    )


def test_invalid_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="max_size"):
        MicroBatcher(Recorder(), max_size=0, max_wait_s=0.01)
    with pytest.raises(ValueError, match="max_wait_s"):
        MicroBatcher(Recorder(), max_size=1, max_wait_s=-1)
    with pytest.raises(ValueError, match="max_pending"):
        MicroBatcher(Recorder(), max_size=1, max_wait_s=0.01, max_pending=0)


class Gate:
    """A batch function that blocks until released, so callers pile up behind a running batch."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, items: Sequence[str]) -> list[str]:
        self.entered.set()
        assert self.release.wait(timeout=30), "the test never released the gate"
        return [f"{item}!" for item in items]


@pytest.mark.parametrize("cross_caller", [True, False], ids=["micro-batcher", "direct"])
async def test_a_full_queue_refuses_new_work_at_once_and_takes_work_again_once_drained(
    cross_caller: bool,
) -> None:
    gate = Gate()
    runner = batch_runner(
        gate, max_size=2, max_wait_s=0.0, cross_caller=cross_caller, max_pending=3
    )
    busy = asyncio.create_task(runner.run(["a", "b"]))
    queued = asyncio.create_task(runner.run(["c"]))
    await asyncio.to_thread(gate.entered.wait, 10)
    await asyncio.sleep(0)  # let `queued` take its place

    # Refused without waiting for the running batch: the gate is still closed.
    with pytest.raises(BatchQueueFullError, match=r"3 items already wait .* limit of 3"):
        await asyncio.wait_for(runner.run(["d"]), timeout=1)

    gate.release.set()
    assert await busy == ["a!", "b!"]
    assert await queued == ["c!"]
    assert await runner.run(["e", "f", "g"]) == ["e!", "f!", "g!"]
    await runner.aclose()


async def test_a_call_larger_than_the_bound_is_refused_as_never_fitting() -> None:
    batcher = MicroBatcher(Recorder(), max_size=4, max_wait_s=0.0, max_pending=2)
    with pytest.raises(BatchQueueFullError, match="can never fit"):
        await batcher.run(["a", "b", "c"])
    assert await batcher.run(["a", "b"]) == ["a!", "b!"]
    await batcher.aclose()


async def test_cancelled_and_failed_callers_give_their_places_back() -> None:
    batcher = MicroBatcher(Recorder(fail_on="poison"), max_size=8, max_wait_s=0.2, max_pending=2)
    gone = asyncio.create_task(batcher.run(["gone", "also"]))
    await asyncio.sleep(0)
    assert batcher.pending == 2
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert batcher.pending == 0
    with pytest.raises(ValueError, match="poison"):
        await batcher.run(["poison", "x"])
    assert batcher.pending == 0
    assert await batcher.run(["ok", "ok2"]) == ["ok!", "ok2!"]
    await batcher.aclose()
