"""Timing a batch function over texts: passes of consecutive batches, the median pass, its stats."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypedDict

import numpy as np


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


class CallStats(TypedDict):
    """Throughput of a pass and latency per call, as the benchmarks' result rows hold them."""

    seconds: float
    texts_per_s: float
    p50_ms: float
    p99_ms: float


def call_stats(
    texts: int, times: Sequence[float], latencies: Sequence[float] | None = None
) -> CallStats:
    """`texts` over the seconds of `times` (one pass), with p50/p99 per call of `latencies`
    (default: `times`)."""
    total = sum(times)
    calls = times if latencies is None else latencies
    return CallStats(
        seconds=total,
        texts_per_s=texts / total,
        p50_ms=1000 * float(np.percentile(calls, 50)),
        p99_ms=1000 * float(np.percentile(calls, 99)),
    )
