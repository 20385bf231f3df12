"""Which implementation runs the single-expert MLP shard by default: a measured table.

For each (device name, shard shape (H, I), M bucket) the table names one of :data:`IMPLS`:

* ``cublas``: ``F.linear`` + ``silu * mul`` + ``F.linear`` (torch, cuBLAS);
* ``triton_v2``: ``fused_mlp.fused_swiglu_mlp`` (two Triton launches, tuned configs);
* ``cuda_onelaunch``: ``cuda_onelaunch.fused_swiglu_mlp_cuda`` (one launch, M <= 32).

Tables are data, one file per Triton version and device, beside the launch configs::

    configs/triton_3_6_0/dispatch_device_name=NVIDIA_H200.json
    {"device_name": "NVIDIA H200", "triton": "3.6.0", "margin": {...},
     "shapes": {"H=2048,I=96": [{"m_max": 1, "impl": "cuda_onelaunch", "us": 7.9,
                                 "cublas_us": 11.9}, {"m_max": 2, ...}, ...]}}

A call with M tokens takes the first bucket with ``m_max >= M`` (so bucket k covers
``(m_max[k-1], m_max[k]]``).  No table for the device, no entry for the shape, or M above the
last bucket: ``cublas``, never an untuned guess.  :func:`choose_buckets` writes a bucket's
impl only where it beat cuBLAS by more than the measured spread (``bench/tune_fused_mlp.py
--dispatch`` measures; :func:`write_table` writes).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .tables import merge_table, read_table, table_path

__all__ = [
    "IMPLS",
    "Bucket",
    "Timing",
    "choose_buckets",
    "choose_impl",
    "dispatch_path",
    "load_table",
    "write_table",
]

logger = logging.getLogger(__name__)
IMPLS = ("cublas", "triton_v2", "cuda_onelaunch")


@dataclass(kw_only=True, slots=True, frozen=True)
class Bucket:
    """One M range of one shard shape: calls with M <= m_max (and above the previous
    bucket's m_max) run ``impl``."""

    m_max: int
    """Largest M of this bucket (a measured M)."""
    impl: str
    """One of IMPLS."""
    us: float | None = None
    """Graph median of ``impl`` at m_max when the table was written (information)."""
    cublas_us: float | None = None
    """Graph median of cuBLAS at m_max in the same run (information)."""


@dataclass(kw_only=True, slots=True, frozen=True)
class Timing:
    """Repeated graph medians (µs) of one implementation at one (shape, M)."""

    medians_us: tuple[float, ...]
    """One median per independent repeat (>= 1)."""

    @property
    def median_us(self) -> float:
        s = sorted(self.medians_us)
        return s[len(s) // 2]

    @property
    def spread_us(self) -> float:
        """max - min over the repeats: the run-to-run noise of this measurement."""
        return max(self.medians_us) - min(self.medians_us)


def dispatch_path(
    device_name: str, directory: str | Path | None = None, triton_version: str | None = None
) -> Path:
    """Where the dispatch table for this device and Triton version lives (the launch-config
    folder; ``SGLANG_EXT_FUSED_MLP_CONFIG_DIR`` moves both)."""
    directory = directory or os.environ.get("SGLANG_EXT_FUSED_MLP_CONFIG_DIR")
    return table_path("dispatch_", device_name, directory, triton_version)


def _parse(path: Path, raw: object) -> dict[str, tuple[Bucket, ...]]:
    if not isinstance(raw, dict) or not isinstance(raw.get("shapes"), dict):
        raise ValueError(
            f"{path}: a dispatch table needs a 'shapes' object; rewrite it with "
            "bench/tune_fused_mlp.py --dispatch"
        )
    shapes = {}
    for shape, rows in raw["shapes"].items():
        try:
            buckets = tuple(Bucket(**row) for row in rows)
        except TypeError as e:
            raise ValueError(f"{path}: {shape}: bad bucket ({e})") from e
        ms = [b.m_max for b in buckets]
        if not ms or ms != sorted(set(ms)) or ms[0] < 1:
            raise ValueError(f"{path}: {shape}: m_max must be increasing integers >= 1, got {ms}")
        bad = [b.impl for b in buckets if b.impl not in IMPLS]
        if bad:
            raise ValueError(f"{path}: {shape}: unknown impl {bad}; known: {IMPLS}")
        shapes[shape] = buckets
    return shapes


@functools.lru_cache(maxsize=32)
def load_table(path: str) -> dict[str, tuple[Bucket, ...]] | None:
    """The buckets per shape key of the table at ``path``, None if there is no file."""
    return read_table(path, _parse)


@functools.lru_cache(maxsize=256)
def _note(what: str) -> None:
    logger.info("single-expert MLP dispatch: %s; using cuBLAS", what)


@functools.lru_cache(maxsize=1024)
def _buckets_for(device_name: str, hidden: int, inter: int, path: str) -> tuple[Bucket, ...]:
    table = load_table(path)
    if table is None:
        _note(f"no dispatch table for {device_name!r} at {path}")
        return ()
    key = f"H={hidden},I={inter}"
    if key not in table:
        _note(f"{path} has no entry {key}")
        return ()
    return table[key]


def choose_impl(m: int, hidden: int, inter: int, device_name: str) -> str:
    """The measured default for M tokens of shard (H, I) on ``device_name``, else cublas."""
    buckets = _buckets_for(device_name, hidden, inter, str(dispatch_path(device_name)))
    for b in buckets:
        if m <= b.m_max:
            return b.impl
    return "cublas"


def choose_buckets(
    timings: Mapping[int, Mapping[str, Timing]], *, min_gain_frac: float = 0.02
) -> list[Bucket]:
    """One bucket per measured M: the impl with the lowest median, if it beats cuBLAS by more
    than both spreads plus ``min_gain_frac`` of cuBLAS's median; else cublas.

    ``timings[M][impl]`` must hold ``cublas`` for every M (the reference measured in the same
    run); an M without it is an error.
    """
    buckets = []
    for m in sorted(timings):
        row = timings[m]
        if "cublas" not in row:
            raise ValueError(f"M={m}: no cublas timing; measure cuBLAS in the same run")
        unknown = set(row) - set(IMPLS)
        if unknown:
            raise ValueError(f"M={m}: unknown impl {sorted(unknown)}; known: {IMPLS}")
        ref = row["cublas"]
        impl, best = min(row.items(), key=lambda kv: (kv[1].median_us, kv[0] != "cublas"))
        margin = ref.spread_us + best.spread_us + min_gain_frac * ref.median_us
        if impl != "cublas" and ref.median_us - best.median_us <= margin:
            impl, best = "cublas", ref
        buckets.append(
            Bucket(
                m_max=m, impl=impl, us=round(best.median_us, 3), cublas_us=round(ref.median_us, 3)
            )
        )
    return buckets


def write_table(
    path: Path,
    device_name: str,
    hidden: int,
    inter: int,
    buckets: Sequence[Bucket],
    *,
    triton_version: str | None = None,
    notes: Mapping[str, object] | None = None,
    keep_unmeasured: bool = False,
) -> None:
    """Merge one shape's buckets into the table at ``path`` (other shapes kept).  The shape's
    old buckets go, unless ``keep_unmeasured``: then only those at an ``m_max`` measured now
    are replaced (a re-measurement of some M leaves the others' buckets)."""
    if not buckets:
        raise ValueError(f"no buckets for H={hidden} I={inter}: nothing was measured")
    rows = [{k: v for k, v in asdict(b).items() if v is not None} for b in buckets]
    merge_table(path, device_name, {f"H={hidden},I={inter}": rows}, _parse,
                triton_version=triton_version, notes=notes,
                merge_by="m_max" if keep_unmeasured else None)  # fmt: skip
    load_table.cache_clear()
    _buckets_for.cache_clear()
