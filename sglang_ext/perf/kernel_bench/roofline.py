"""Timing helpers for the fused-MLP bench and tuner (CUDA events via ``do_bench``).

Every timing is a median over many runs after warm-up.  ``do_bench`` clears the L2 before
each run; on top of that inputs rotate over several buffer sets, so graph replays of many
calls don't hit in L2 either (weights included: a decode step reads them cold).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import triton
import triton.testing

__all__ = [
    "InputSet",
    "copy_us",
    "make_sets",
    "time_eager",
    "time_graph",
    "measure_ceilings",
    "roofline_floor_us",
    "weight_floor_us",
]


@dataclass(slots=True)
class InputSet:
    x: torch.Tensor  # [M, H]
    w13: torch.Tensor  # [2I, H]
    w2: torch.Tensor  # [H, I]
    out: torch.Tensor  # [M, H]


def make_sets(
    m: int,
    hidden: int,
    inter: int,
    dtype: torch.dtype,
    *,
    min_bytes: int = 128 << 20,
    max_sets: int = 64,
    seed: int = 0,
) -> list[InputSet]:
    """Enough independent (x, weights, out) sets to exceed ``min_bytes`` (2x a 50 MB L2)."""
    elt = torch.tensor([], dtype=dtype).element_size()
    set_bytes = (2 * m * hidden + 3 * hidden * inter) * elt
    n = max(2, min(max_sets, math.ceil(min_bytes / set_bytes)))
    g = torch.Generator(device="cuda").manual_seed(seed)
    sets = []
    for _ in range(n):
        x = torch.randn(m, hidden, device="cuda", dtype=dtype, generator=g)
        w13 = torch.randn(2 * inter, hidden, device="cuda", dtype=dtype, generator=g)
        w2 = torch.randn(hidden, inter, device="cuda", dtype=dtype, generator=g)
        sets.append(
            InputSet(
                x,
                w13.mul_(hidden**-0.5),
                w2.mul_(inter**-0.5),
                torch.empty(m, hidden, device="cuda", dtype=dtype),
            )
        )
    return sets


def _median_us(fn: Callable[[], object], warmup_ms: float, rep_ms: float) -> float:
    return triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="median") * 1e3


def time_eager(
    call: Callable[[InputSet], object],
    sets: Sequence[InputSet],
    *,
    warmup_ms: float = 10,
    rep_ms: float = 40,
) -> float:
    """Median µs of one eager call (host launch cost included), rotating over ``sets``."""
    it = itertools.cycle(sets)
    return _median_us(lambda: call(next(it)), warmup_ms, rep_ms)


def time_graph(
    call: Callable[[InputSet], object],
    sets: Sequence[InputSet],
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
        return _median_us(graph.replay, warmup_ms, rep_ms) / len(sets)
    finally:
        del graph


def copy_us() -> tuple[float, int]:
    """Median µs of a 1 GiB device-to-device copy, and the bytes it moves (read + write)."""
    src = torch.randn(1 << 29, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    return _median_us(lambda: dst.copy_(src), 25, 200), 2 * src.numel() * src.element_size()


def measure_ceilings(dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Copy ceiling (1 GiB D2D copy, read + write bytes) and GEMM ceiling (8192^3 matmul)."""
    copy_us_, nbytes = copy_us()
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    mm_us = _median_us(lambda: a @ b, 25, 200)
    return {
        "copy_gbps": nbytes / copy_us_ / 1e3,
        "gemm_tflops": 2 * 8192**3 / mm_us / 1e6,
        "copy_us": copy_us_,
        "gemm_us": mm_us,
    }


def roofline_floor_us(m: int, hidden: int, inter: int, elt: int, ceil: dict[str, float]) -> dict:
    """floor = max(flops / GEMM ceiling, min bytes / copy ceiling) for one MLP shard call.

    flops = 2*M*H*2I (gate+up) + 2*M*I*H (down) = 6*M*H*I;
    min bytes = (x read + out write + w13 + w2 read once) = (2*M*H + 3*H*I) * elt.
    """
    flops = 6 * m * hidden * inter
    nbytes = (2 * m * hidden + 3 * hidden * inter) * elt
    t_flops = flops / (ceil["gemm_tflops"] * 1e6)
    t_bytes = nbytes / (ceil["copy_gbps"] * 1e3)
    return {
        "floor_us": max(t_flops, t_bytes),
        "flops": flops,
        "min_bytes": nbytes,
        "bound": "compute" if t_flops > t_bytes else "memory",
    }


def weight_floor_us(hidden: int, inter: int, elt: int, copy_gbps: float) -> float:
    """Reading the shard's weights once (w13 + w2 = 3*H*I elements) at the measured copy
    bandwidth: no implementation can beat it at decode sizes."""
    return 3 * hidden * inter * elt / (copy_gbps * 1e3)
