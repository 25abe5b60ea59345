"""Timing a batch function over texts: passes of consecutive batches, and the median pass."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence


def timed_passes(
    run: Callable[[list[str]], object],
    texts: list[str],
    batch: int,
    repeat: int,
    *,
    warmup_calls: int = 1,
) -> list[list[float]]:
    """Seconds per call of `run` on consecutive slices of `batch` texts, for each of `repeat`
    passes over the texts, after `warmup_calls` untimed calls (first calls allocate and, on a
    GPU, compile kernels)."""
    for start in range(0, min(len(texts), warmup_calls * batch), batch):
        run(texts[start : start + batch])
    passes = []
    for _ in range(max(1, repeat)):
        times = []
        for start in range(0, len(texts), batch):
            chunk = texts[start : start + batch]
            t0 = time.perf_counter()
            run(chunk)
            times.append(time.perf_counter() - t0)
        passes.append(times)
    return passes


def median_pass(passes: Sequence[list[float]]) -> list[float]:
    """The pass of median total time: one pass is at the mercy of a noisy moment."""
    return sorted(passes, key=sum)[len(passes) // 2]
