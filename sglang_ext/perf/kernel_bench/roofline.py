"""Inputs, device ceilings and roofline floors of the fused-MLP bench and tuner.

The timings themselves are :mod:`sglang_ext.perf.timing`'s (``do_bench`` medians, which
clear the L2 before each run); the input sets here rotate over enough buffers that graph
replays of many calls don't hit in L2 either (weights included: a decode step reads them cold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from sglang_ext.perf.timing import copy_us, median_us

__all__ = [
    "InputSet",
    "make_sets",
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


def measure_ceilings(dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    """Copy ceiling (1 GiB D2D copy, read + write bytes) and GEMM ceiling (8192^3 matmul)."""
    copy_us_, nbytes = copy_us()
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    mm_us = median_us(lambda: a @ b, 25, 200)
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
