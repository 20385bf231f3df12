"""Launch configurations for ``fused_swiglu_mlp``: a dataclass, JSON tables, a heuristic.

Tuned tables are data, one file per Triton version and device name (as SGLang's fused-MoE
configs), holding one entry per shard shape and a grid of M values::

    configs/triton_3_6_0/device_name=NVIDIA_H100_80GB_HBM3.json
    {"H=2048,I=96": {"1": {"block_m": 16, "k_splits": 8, ...}, "2": {...}, ...}, ...}

The entry whose M is nearest (in log2) to the call's M is used.  A missing file or shape
falls back to :func:`heuristic_config`, logged once.  ``SGLANG_EXT_FUSED_MLP_CONFIG_DIR``
points the loader at another folder (the tuning script writes there first).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import triton

from .tables import table_path

__all__ = [
    "MlpLaunchConfig",
    "heuristic_config",
    "max_k_splits",
    "get_config",
    "config_path",
    "shape_key",
]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True, frozen=True)
class MlpLaunchConfig:
    """Block sizes and launch shape of one call of ``fused_swiglu_mlp``."""

    block_m: int = 16
    """Rows of x per program, both GEMMs (>= 16, power of 2)."""
    block_i: int = 32
    """GEMM1: intermediate (I) columns per program."""
    block_k: int = 128
    """GEMM1: K-block over H."""
    block_n: int = 128
    """GEMM2: output (H) columns per program."""
    block_k2: int = 64
    """GEMM2: K-block over I (capped at next_power_of_2(I))."""
    k_splits: int = 1
    """GEMM1: programs sharing the H reduction of one (M, I) tile; > 1 writes fp32 partials
    that GEMM2 sums (fills the GPU at small M)."""
    group_m: int = 8
    """Grouped program ordering for L2 reuse (tutorial 03)."""
    num_warps: int = 4
    """Warps per program."""
    num_stages: int = 2
    """Software pipelining depth."""
    one_launch: bool = False
    """v4 (experimental): one launch, phase 2 waits on a counter (``fused_mlp_onelaunch``).
    block_i/block_k/k_splits tile phase 1, block_n/block_k2 phase 2.  Off unless validated."""

    def __post_init__(self) -> None:
        for name in ("block_m", "block_i", "block_k", "block_n", "block_k2"):
            v = getattr(self, name)
            if v < 16 or v & (v - 1):
                raise ValueError(f"{name}={v}: must be a power of two >= 16 (tl.dot minimum)")
        if self.k_splits < 1 or self.group_m < 1 or self.num_warps < 1 or self.num_stages < 1:
            raise ValueError(f"k_splits, group_m, num_warps, num_stages must be >= 1: {self}")

    def to_dict(self) -> dict[str, int | str]:
        return dataclasses.asdict(self)


def shape_key(hidden: int, inter: int) -> str:
    return f"H={hidden},I={inter}"


def config_path(device_name: str, directory: str | Path | None = None) -> Path:
    """Where the table for this device and the running Triton version lives."""
    return table_path(
        "", device_name, directory or os.environ.get("SGLANG_EXT_FUSED_MLP_CONFIG_DIR")
    )


@functools.lru_cache(maxsize=64)
def _load_table(path: str) -> dict[str, dict[int, MlpLaunchConfig]] | None:
    p = Path(path)
    if not p.is_file():
        return None
    raw = json.loads(p.read_text())
    return {
        shape: {int(m): MlpLaunchConfig(**cfg) for m, cfg in by_m.items()}
        for shape, by_m in raw.items()
    }


@functools.lru_cache(maxsize=256)
def _warn_fallback(what: str) -> None:
    logger.warning("fused_swiglu_mlp: %s; using the heuristic launch config", what)


def heuristic_config(m: int, hidden: int, inter: int, num_sms: int = 132) -> MlpLaunchConfig:
    """A reasonable config without tuning: K-split GEMM1 filling ~2 programs per SM at small M."""
    if m <= 128:
        block_m = min(64, max(16, triton.next_power_of_2(m)))
        block_k = 128 if hidden >= 128 else max(16, triton.next_power_of_2(hidden))
        tiles = triton.cdiv(m, block_m) * triton.cdiv(inter, 16)
        k_splits = max(
            1,
            min(triton.cdiv(hidden, block_k), (2 * num_sms) // tiles, max_k_splits(block_m, inter)),
        )
        return MlpLaunchConfig(
            block_m=block_m,
            block_i=16,
            block_k=block_k,
            block_n=32,
            block_k2=64,
            k_splits=k_splits,
            num_warps=4,
            num_stages=3,
        )
    return MlpLaunchConfig(
        block_m=128,
        block_i=64,
        block_k=64,
        block_n=128,
        block_k2=64,
        group_m=8,
        num_warps=8,
        num_stages=3,
    )


def max_k_splits(block_m: int, inter: int, budget_bytes: int = 256 << 10) -> int:
    """Cap K-splits so one GEMM2 program re-reads at most ``budget_bytes`` of fp32 partials."""
    return max(1, budget_bytes // (block_m * 2 * inter * 4))


def get_config(
    m: int, hidden: int, inter: int, device_name: str, num_sms: int = 132
) -> MlpLaunchConfig:
    """The tuned config nearest to ``m`` for this shape and device, else the heuristic."""
    path = config_path(device_name)
    table = _load_table(str(path))
    if table is None:
        _warn_fallback(f"no tuned table at {path}")
        return heuristic_config(m, hidden, inter, num_sms)
    by_m = table.get(shape_key(hidden, inter))
    if not by_m:
        _warn_fallback(f"{path} has no entry {shape_key(hidden, inter)}")
        return heuristic_config(m, hidden, inter, num_sms)
    best = min(by_m, key=lambda k: abs(math.log2(k) - math.log2(max(m, 1))))
    return by_m[best]
