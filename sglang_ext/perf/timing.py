"""The one timing module: GPU and CPU work timed after warm-up, medians reported.

- :func:`time_iters`: seconds of each of ``iters`` calls after ``warmup`` calls.  On CUDA
  one pair of CUDA events per iteration recorded on the current stream and one synchronize
  at the end (no per-op synchronize inside the timed loop); on CPU ``time.perf_counter``
  around each call, with an optional barrier before each iteration so that all ranks start
  a collective together.  Report :func:`median` (robust to the odd scheduler hiccup).
- :func:`median_us`, :func:`time_eager`, :func:`time_graph`, :func:`copy_us`: CUDA kernel
  timings through ``triton.testing.do_bench`` (CUDA events, L2 cleared before each run),
  median microseconds after warm-up; ``time_graph`` replays a CUDA graph of one call per
  input set (launch gaps removed), ``time_eager`` includes the host launch cost.  Inputs
  rotate over several buffer sets so replays of many calls don't hit in L2 either.
- :class:`Clock`, :class:`RankTimings`: wall-clock instants of one prefill + decode run,
  seconds since a barrier-aligned t0 on every rank.
"""

from __future__ import annotations

import dataclasses
import itertools
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = [
    "time_iters",
    "median",
    "median_us",
    "time_eager",
    "time_graph",
    "copy_us",
    "Clock",
    "RankTimings",
]


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


def median_us(fn: Callable[[], object], warmup_ms: float, rep_ms: float) -> float:
    """Median µs of ``fn`` on CUDA (``triton.testing.do_bench``: warm-up, then repeats)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median") * 1e3


def time_eager(
    call: Callable[[Any], object],
    sets: Sequence[Any],
    *,
    warmup_ms: float = 10,
    rep_ms: float = 40,
) -> float:
    """Median µs of one eager call (host launch cost included), rotating over ``sets``."""
    it = itertools.cycle(sets)
    return median_us(lambda: call(next(it)), warmup_ms, rep_ms)


def time_graph(
    call: Callable[[Any], object],
    sets: Sequence[Any],
    *,
    warmup_ms: float = 10,
    rep_ms: float = 40,
) -> float:
    """Median µs per call of a CUDA graph holding one call per set (launch gaps removed)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # warm-up on a side stream, as torch's graph docs advise
        for s in sets:
            call(s)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for s in sets:
            call(s)
    try:
        return median_us(graph.replay, warmup_ms, rep_ms) / len(sets)
    finally:
        del graph


def copy_us() -> tuple[float, int]:
    """Median µs of a 1 GiB device-to-device copy, and the bytes it moves (read + write)."""
    src = torch.randn(1 << 29, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    return median_us(lambda: dst.copy_(src), 25, 200), 2 * src.numel() * src.element_size()


class Clock:
    """Seconds since construction (construct it right after a barrier on every rank)."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.wall_t0 = time.time()

    def __call__(self) -> float:
        return time.perf_counter() - self.t0


@dataclass(kw_only=True, slots=True)
class RankTimings:
    """What one rank measured; all ``*_s`` instants are seconds since the common t0."""

    rank: int
    world_size: int
    stage_layers: list[int]
    """[first, last+1) layer of this rank's stage"""
    prompt_len: int
    n_chunks: int
    prefill_start_s: float = 0.0
    prefill_end_s: float = 0.0
    """last-token logits available on this rank"""
    chunk_compute_s: list[float] = field(default_factory=list)
    """compute of each chunk on this stage"""
    chunk_recv_wait_s: list[float] = field(default_factory=list)
    """time blocked receiving each chunk from the previous stage"""
    kv_final_s: float = 0.0
    """this stage's KV complete"""
    kv_sync_start_s: float = 0.0
    kv_sync_end_s: float = 0.0
    kv_sync_bytes_sent: int = 0
    kv_sync_bytes_recv: int = 0
    decode_start_s: float = 0.0
    decode_end_s: float = 0.0
    decode_steps: int = 0
    total_s: float = 0.0

    @property
    def compute_s(self) -> float:
        return sum(self.chunk_compute_s)

    @property
    def prefill_s(self) -> float:
        return self.prefill_end_s - self.prefill_start_s

    def metrics(self) -> dict:
        """The record's ``metrics``: raw fields plus derived ones, units in the names."""
        d = dataclasses.asdict(self)
        dec = self.decode_end_s - self.decode_start_s
        d.update(
            prefill_s=self.prefill_s,
            compute_s=self.compute_s,
            bubble_s=self.prefill_s - self.compute_s,
            kv_sync_s=self.kv_sync_end_s - self.kv_sync_start_s,
            decode_s=dec,
            decode_tok_per_s=self.decode_steps / dec if dec > 0 and self.decode_steps else None,
        )
        return d
