"""Launch configurations for ``fused_swiglu_mlp``: a dataclass, JSON tables, a heuristic.

Tuned tables are data, one file per Triton version and device name (as SGLang's fused-MoE
configs), holding one entry per shard shape and a grid of M values::

    configs/triton_3_6_0/device_name=NVIDIA_H100_80GB_HBM3.json
    {"H=2048,I=96": {"1": {"path": "splitk", "block_m": 16, ...}, "2": {...}, ...}, ...}

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

__all__ = ["MlpLaunchConfig", "heuristic_config", "get_config", "config_path", "shape_key"]

logger = logging.getLogger(__name__)
_PATHS = ("splitk", "two_stage")
_DEFAULT_DIR = Path(__file__).parent / "configs"


@dataclass(kw_only=True, slots=True, frozen=True)
class MlpLaunchConfig:
    """Block sizes and launch shape of one call of ``fused_swiglu_mlp``."""

    path: str = "splitk"
    """'splitk' (one launch, small/mid M) or 'two_stage' (GEMM1+SwiGLU, then GEMM2)."""
    block_m: int = 16
    """Rows of x per program (>= 16, power of 2)."""
    block_i: int = 32
    """Columns of the intermediate (I) per program in GEMM1; the K-block of GEMM2 in two_stage."""
    block_k: int = 128
    """K-block over H in GEMM1."""
    block_n: int = 128
    """Output columns (H) per step of the down projection / per program of GEMM2."""
    k_splits: int = 1
    """splitk only: how many programs share the H reduction of one (M, I) block."""
    group_m: int = 8
    """two_stage only: grouped program ordering for L2 reuse."""
    num_warps: int = 4
    """Warps per program."""
    num_stages: int = 2
    """Software pipelining depth."""

    def __post_init__(self) -> None:
        if self.path not in _PATHS:
            raise ValueError(f"path={self.path!r}: use one of {_PATHS}")
        for name in ("block_m", "block_i", "block_k", "block_n"):
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
    directory = Path(directory or os.environ.get("SGLANG_EXT_FUSED_MLP_CONFIG_DIR") or _DEFAULT_DIR)
    version_dir = "triton_" + triton.__version__.replace(".", "_")
    return directory / version_dir / f"device_name={device_name.replace(' ', '_')}.json"


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
    """A reasonable config without tuning: splitk filling ~2 programs per SM up to M=256."""
    if m <= 256:
        block_m = min(64, max(16, triton.next_power_of_2(m)))
        block_i = 32 if inter >= 32 else 16
        block_k = 128 if hidden >= 128 else max(16, triton.next_power_of_2(hidden))
        tiles = triton.cdiv(m, block_m) * triton.cdiv(inter, block_i)
        k_splits = max(1, min(triton.cdiv(hidden, block_k), (2 * num_sms) // tiles))
        return MlpLaunchConfig(path="splitk", block_m=block_m, block_i=block_i,
                               block_k=block_k, block_n=128, k_splits=k_splits)
    return MlpLaunchConfig(path="two_stage", block_m=128, block_i=64, block_k=64, block_n=128,
                           group_m=8, num_warps=8, num_stages=3)


def get_config(m: int, hidden: int, inter: int, device_name: str,
               num_sms: int = 132) -> MlpLaunchConfig:
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
