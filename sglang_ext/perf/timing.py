"""Timing of GPU and CPU work without per-op synchronize inside the timed loop.

On CUDA: one pair of CUDA events per iteration recorded on the current stream, one
synchronize at the end, times read from ``Event.elapsed_time``.  On CPU:
``time.perf_counter`` around each call, with an optional barrier before each iteration
so that all ranks start a collective together.  Results are seconds per iteration;
report medians (robust to the odd scheduler hiccup).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["time_iters", "median"]


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def time_iters(
    fn: Callable[[], object],
    *,
    device: torch.device,
    warmup: int = 5,
    iters: int = 20,
    barrier: Callable[[], object] | None = None,
) -> list[float]:
    """Seconds taken by each of ``iters`` calls of ``fn`` after ``warmup`` calls."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"need iters >= 1 and warmup >= 0, got iters={iters} warmup={warmup}")
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        if barrier is not None:
            barrier()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(iters)]
        for s, e in zip(starts, ends, strict=True):
            s.record()
            fn()
            e.record()
        torch.cuda.synchronize(device)
        return [s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends, strict=True)]
    out = []
    for _ in range(iters):
        if barrier is not None:
            barrier()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out
