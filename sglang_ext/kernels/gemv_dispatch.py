"""Which kernel runs a decode-sized linear ``x @ w^T``: the Triton skinny GEMM (``gemv``) where
a measured per-device table says it beats cuBLAS, else ``F.linear``.

At decode a linear layer multiplies a few tokens by its whole weight, and on the H200 cuBLAS
takes a split-K kernel plus a reduce kernel for it; ``kernels.gemv`` does it in one launch
and, with the right launch per shape, 2-10% faster at M <= 16 (``bench/results/h200/
gemv.jsonl``) -- and slower elsewhere, so nothing runs it without a measurement.  Patch 0020
sends sglang's ``UnquantizedLinearMethod.apply`` (the q/k/v and output projections) through
:func:`linear`, and ``SingleExpertMoE``'s cuBLAS MLP uses it for its two GEMMs.

Tables are data, one file per Triton version and device (``tables.table_path``)::

    configs/triton_3_6_0/gemv_device_name=NVIDIA_H200.json
    {"device_name": "NVIDIA H200", "triton": "3.6.0", "source": "...",
     "shapes": {"n=5120,k=2048,dtype=bfloat16": [
        {"m_max": 1, "config": "n16k512w4s2d0", "us": 8.3, "cublas_us": 8.8},
        {"m_max": 16, "config": "cublas", "us": 8.9, "cublas_us": 8.9}]}}

M tokens take the first bucket with ``m_max >= M``; its ``config`` is a ``GemvConfig`` name
or ``cublas``.  No table for the device, no entry for the (N, K, dtype), M above the last
bucket, a CPU tensor, a strided or batched input, a weight of another dtype, or a trace under
``torch.compile``: ``F.linear``.  :func:`choose_buckets` picks, per measured M, the fastest
swept launch where it beats cuBLAS by more than ``margin``;
``bench/bench_gemv.py --write-table`` measures and writes.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from .gemv import MAX_M, GemvConfig, gemv
from .tables import merge_table, read_table, table_path

__all__ = [
    "CUBLAS",
    "Bucket",
    "choose_buckets",
    "config_for",
    "launch_for",
    "linear",
    "load_table",
    "shape_key",
    "table_file",
    "write_table",
]

logger = logging.getLogger(__name__)

CUBLAS = "cublas"
"""A bucket's ``config`` that keeps ``F.linear``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """Calls of at most ``m_max`` tokens (and more than the previous bucket's) run ``config``:
    a ``GemvConfig`` name, or ``cublas``."""

    m_max: int
    config: str
    us: float | None = None
    """The chosen kernel's graph median at m_max when the table was written (information)."""
    cublas_us: float | None = None
    """cuBLAS's in the same run (information)."""

    def to_dict(self) -> dict[str, Any]:
        row = {"m_max": self.m_max, "config": self.config, "us": self.us,
               "cublas_us": self.cublas_us}  # fmt: skip
        return {k: v for k, v in row.items() if v is not None}


def shape_key(n: int, k: int, dtype: torch.dtype | str) -> str:
    """'n=5120,k=2048,dtype=bfloat16': the weight's [N, K] and dtype."""
    return f"n={n},k={k},dtype={str(dtype).removeprefix('torch.')}"


def table_file(device_name: str, directory: str | Path | None = None,
               triton_version: str | None = None) -> Path:  # fmt: skip
    return table_path("gemv_", device_name, directory, triton_version)


def _parse(path: Path, raw: object) -> dict[str, tuple[Bucket, ...]]:
    fix = "rewrite it with bench/bench_gemv.py --write-table"
    if not isinstance(raw, dict) or not isinstance(raw.get("shapes"), dict):
        raise ValueError(f"{path}: a gemv table needs a 'shapes' object; {fix}")
    shapes = {}
    for key, rows in raw["shapes"].items():
        try:
            buckets = tuple(Bucket(**r) for r in rows)
            for b in buckets:
                if b.config != CUBLAS:
                    GemvConfig.parse(b.config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: {key}: bad bucket ({e}); {fix}") from e
        ms = [b.m_max for b in buckets]
        if not ms or ms != sorted(set(ms)) or ms[0] < 1 or ms[-1] > MAX_M:
            raise ValueError(f"{path}: {key}: m_max must be increasing integers in 1..{MAX_M}, "
                             f"got {ms}; {fix}")  # fmt: skip
        shapes[key] = buckets
    return shapes


@functools.lru_cache(maxsize=16)
def load_table(path: str) -> dict[str, tuple[Bucket, ...]] | None:
    """The buckets per shape key of the table at ``path``; None if there is no file."""
    return read_table(path, _parse)


def config_for(
    m: int,
    n: int,
    k: int,
    dtype: torch.dtype | str,
    device_name: str,
    directory: str | Path | None = None,
    triton_version: str | None = None,
) -> GemvConfig | None:
    """The ``GemvConfig`` the table gives M tokens of an [N, K] weight on ``device_name``, or
    None for cuBLAS (table: the running Triton's unless ``triton_version``)."""
    table = load_table(str(table_file(device_name, directory, triton_version)))
    for b in (table or {}).get(shape_key(n, k, dtype), ()):
        if m <= b.m_max:
            return None if b.config == CUBLAS else GemvConfig.parse(b.config)
    return None


@functools.lru_cache(maxsize=4096)
def _cuda_config(m: int, n: int, k: int, dtype: torch.dtype, index: int) -> GemvConfig | None:
    c = config_for(m, n, k, dtype, torch.cuda.get_device_name(index))
    if c is not None:
        logger.debug("linear M=%d N=%d K=%d %s: gemv %s (table)", m, n, k, dtype, c.name)
    return c


def launch_for(x: torch.Tensor, weight: torch.Tensor) -> GemvConfig | None:
    """The gemv launch the device's table gives ``x @ weight^T``, or None (cuBLAS, or not a
    call gemv takes: CPU, batched, strided, another dtype, a trace under torch.compile)."""
    if (
        x.is_cuda
        and x.dim() == 2
        and x.shape[0] <= MAX_M
        and weight.dtype == x.dtype
        and x.stride(1) == 1
        and weight.stride(1) == 1
        and not torch.compiler.is_compiling()
    ):
        m, k = x.shape
        return _cuda_config(m, weight.shape[0], k, x.dtype, x.device.index or 0)
    return None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through the gemv kernel where the device's table says
    so (patch 0020's call; cached per shape, so a decode step pays one dict lookup)."""
    if bias is None or bias.is_contiguous():
        config = launch_for(x, weight)
        if config is not None:
            return gemv(x, weight, bias, config=config)
    return F.linear(x, weight, bias)


def choose_buckets(
    records: Iterable[Mapping[str, Any]], margin: float = 0.03
) -> dict[str, list[Bucket]]:
    """Buckets per shape key from ``gemv`` bench records of one run: at each measured M, the
    fastest gemv launch where it is more than ``margin`` faster than cuBLAS, else cuBLAS.
    The buckets end at the largest measured M (above it: cuBLAS)."""
    by_point: dict[tuple[str, int], list[tuple[Mapping, Mapping]]] = defaultdict(list)
    for r in records:
        c = r["config"]
        by_point[(shape_key(c["n"], c["k"], c["dtype"]), c["m"])].append((c, r["metrics"]))
    out: dict[str, list[Bucket]] = defaultdict(list)
    for (key, m), rows in sorted(by_point.items()):
        base = [mt["median_us"] for c, mt in rows if c["kernel"] == CUBLAS]
        if len(base) != 1:
            raise ValueError(f"{key} M={m}: {len(base)} timings of cuBLAS (records of one run, "
                             "cuBLAS included, are needed)")  # fmt: skip
        ours = [(c, mt) for c, mt in rows if c["kernel"] != CUBLAS]
        best_c, best = min(ours, key=lambda r: r[1]["median_us"], default=(None, None))
        if best is not None and best["median_us"] < base[0] * (1 - margin):
            config, us = best_c["gemv_config"], best["median_us"]
        else:
            config, us = CUBLAS, base[0]
        out[key].append(Bucket(m_max=m, config=config, us=round(us, 2),
                               cublas_us=round(base[0], 2)))  # fmt: skip
    return dict(out)


def write_table(
    path: Path,
    device_name: str,
    shapes: Mapping[str, Sequence[Bucket]],
    *,
    triton_version: str | None = None,
    notes: Mapping[str, Any] | None = None,
    keep_unmeasured: bool = False,
) -> None:
    """Merge ``shapes`` (key -> buckets) into the table at ``path`` (other keys kept); a
    key's old buckets go, unless ``keep_unmeasured``: then only those at an ``m_max``
    measured now are replaced."""
    rows = {k: [b.to_dict() for b in v] for k, v in shapes.items()}
    merge_table(path, device_name, rows, _parse, triton_version=triton_version, notes=notes,
                merge_by="m_max" if keep_unmeasured else None)  # fmt: skip
    load_table.cache_clear()
    _cuda_config.cache_clear()
