"""The launch of sglang's Triton GQA decode attention, stage 1, from a measured table.

sglang 0.4.7 launches ``_fwd_grouped_kernel_stage1`` with ``BLOCK_N=32, num_warps=4,
num_stages=2`` at every batch size (``_decode_grouped_att_m_fwd``).  On the H200 other
launches of the same kernel are 15-37% faster at decode shapes (``bench/results/h200/
decode_attention.jsonl``): a deeper pipeline (3 stages) from batch 32 up, 128-token blocks
over 8 warps at batch 1-8.  Patch 0019 asks :func:`stage1_config` for the launch; the kernel,
its split rule (``num_kv_splits``) and its arithmetic are sglang's, so only the order of the
float32 accumulation over KV blocks changes.

Tables are data, one file per Triton version and device (``tables.table_path``)::

    configs/triton_3_6_0/decode_attention_device_name=NVIDIA_H200.json
    {"device_name": "NVIDIA H200", "triton": "3.6.0", "source": "...",
     "shapes": {"group=8,head_dim=128": [{"batch_max": 1, "block_n": 128, "num_warps": 8,
                                          "num_stages": 2, "us": 8.2, "sglang_us": 13.0}, ...]}}

A batch of B sequences takes the first bucket with ``batch_max >= B``.  No table for the
device, no entry for the (query heads per KV head, head dim) shape, or B above the last
bucket: sglang's own launch, never an untuned guess.  :func:`choose_buckets` picks, per
measured batch, the fastest launch at sglang's split count where it beats sglang's launch by
more than ``margin``; ``bench/bench_decode_attention.py --write-table`` measures and writes.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .tables import merge_table, read_table, table_path

__all__ = [
    "SGLANG_STAGE1",
    "Bucket",
    "Stage1Config",
    "choose_buckets",
    "launch_for",
    "load_table",
    "parse_config",
    "shape_key",
    "stage1_config",
    "table_file",
    "write_table",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Stage1Config:
    """Launch parameters of ``_fwd_grouped_kernel_stage1``."""

    block_n: int = 32
    """KV tokens per loop step (a power of two)."""
    num_warps: int = 4
    num_stages: int = 2

    def __post_init__(self) -> None:
        if self.block_n < 16 or self.block_n & (self.block_n - 1):
            raise ValueError(f"block_n={self.block_n}: a power of two >= 16")
        if self.num_warps not in (1, 2, 4, 8, 16) or self.num_stages < 1:
            raise ValueError(f"num_warps={self.num_warps} (1-16, a power of two), "
                             f"num_stages={self.num_stages} (>= 1)")  # fmt: skip

    @property
    def name(self) -> str:
        return f"n{self.block_n}w{self.num_warps}s{self.num_stages}"


SGLANG_STAGE1 = Stage1Config()
"""What sglang 0.4.7 launches on CUDA (``_decode_grouped_att_m_fwd``)."""


def parse_config(text: str) -> Stage1Config:
    """'n64w4s3' -> Stage1Config(64, 4, 3); a clear error otherwise."""
    m = re.fullmatch(r"n(\d+)w(\d+)s(\d+)", text)
    if not m:
        raise ValueError(f"stage-1 config {text!r}: write n<BLOCK_N>w<num_warps>s<num_stages>")
    return Stage1Config(*(int(g) for g in m.groups()))


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    """Batches of at most ``batch_max`` sequences (and more than the previous bucket's)
    launch ``stage1``."""

    batch_max: int
    stage1: Stage1Config
    us: float | None = None
    """Stage 1 + 2 graph median at batch_max when the table was written (information)."""
    sglang_us: float | None = None
    """The same with sglang's launch, in the same run (information)."""

    def to_dict(self) -> dict[str, Any]:
        row = {"batch_max": self.batch_max, "block_n": self.stage1.block_n,
               "num_warps": self.stage1.num_warps, "num_stages": self.stage1.num_stages,
               "us": self.us, "sglang_us": self.sglang_us}  # fmt: skip
        return {k: v for k, v in row.items() if v is not None}


def shape_key(kv_group_num: int, head_dim: int) -> str:
    """'group=8,head_dim=128': query heads per KV head and the head dim (what the launch
    and the grid depend on besides the batch)."""
    return f"group={kv_group_num},head_dim={head_dim}"


def table_file(device_name: str, directory: str | Path | None = None,
               triton_version: str | None = None) -> Path:  # fmt: skip
    return table_path("decode_attention_", device_name, directory, triton_version)


def _parse(path: Path, raw: object) -> dict[str, tuple[Bucket, ...]]:
    fix = "rewrite it with bench/bench_decode_attention.py --write-table"
    if not isinstance(raw, dict) or not isinstance(raw.get("shapes"), dict):
        raise ValueError(f"{path}: a decode-attention table needs a 'shapes' object; {fix}")
    shapes = {}
    for key, rows in raw["shapes"].items():
        try:
            buckets = tuple(
                Bucket(batch_max=r["batch_max"], us=r.get("us"), sglang_us=r.get("sglang_us"),
                       stage1=Stage1Config(r["block_n"], r["num_warps"], r["num_stages"]))
                for r in rows
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: {key}: bad bucket ({e!r}); {fix}") from e
        bs = [b.batch_max for b in buckets]
        if not bs or bs != sorted(set(bs)) or bs[0] < 1:
            raise ValueError(f"{path}: {key}: batch_max must be increasing integers >= 1, "
                             f"got {bs}; {fix}")  # fmt: skip
        shapes[key] = buckets
    return shapes


@functools.lru_cache(maxsize=16)
def load_table(path: str) -> dict[str, tuple[Bucket, ...]] | None:
    """The buckets per shape key of the table at ``path``; None if there is no file."""
    return read_table(path, _parse)


def launch_for(
    batch: int,
    kv_group_num: int,
    head_dim: int,
    device_name: str,
    directory: str | Path | None = None,
    triton_version: str | None = None,
) -> Stage1Config:
    """The stage-1 launch for ``batch`` sequences on ``device_name``: the table's bucket,
    else sglang's launch (table: the running Triton's unless ``triton_version``)."""
    table = load_table(str(table_file(device_name, directory, triton_version)))
    for b in (table or {}).get(shape_key(kv_group_num, head_dim), ()):
        if batch <= b.batch_max:
            return b.stage1
    return SGLANG_STAGE1


@functools.lru_cache(maxsize=1024)
def _cuda_launch(batch: int, kv_group_num: int, head_dim: int, index: int) -> tuple[int, int, int]:
    import torch

    c = launch_for(batch, kv_group_num, head_dim, torch.cuda.get_device_name(index))
    if c != SGLANG_STAGE1:
        logger.debug("decode attention stage 1 at batch %d: %s (table)", batch, c.name)
    return c.block_n, c.num_warps, c.num_stages


def stage1_config(
    batch: int, kv_group_num: int, head_dim: int, device: Any
) -> tuple[int, int, int]:
    """(BLOCK_N, num_warps, num_stages) for sglang's stage-1 launch (patch 0019's call):
    the table's launch on a CUDA device that has one, else sglang's.  Cached per shape."""
    if getattr(device, "type", None) != "cuda":
        return SGLANG_STAGE1.block_n, SGLANG_STAGE1.num_warps, SGLANG_STAGE1.num_stages
    return _cuda_launch(batch, kv_group_num, head_dim, device.index or 0)


def choose_buckets(
    records: Iterable[Mapping[str, Any]], margin: float = 0.05
) -> dict[str, list[Bucket]]:
    """Buckets per shape key from ``decode_attention`` bench records of one run: at each
    measured batch, the fastest stage-1 launch at sglang's own split count, where it is
    more than ``margin`` faster than sglang's launch; otherwise sglang's launch."""
    by_point: dict[tuple[str, int], list[tuple[Mapping, Mapping]]] = defaultdict(list)
    for r in records:
        c, m = r["config"], r["metrics"]
        if c["kv_splits"] == c["sglang_rule_splits"]:
            key = shape_key(c["heads"] // c["kv_heads"], c["head_dim"])
            by_point[(key, c["batch_size"])].append((c, m))
    out: dict[str, list[Bucket]] = defaultdict(list)
    for (key, batch), rows in sorted(by_point.items()):
        base = [m["median_us"] for c, m in rows if c["is_sglang_default"]]
        if len(base) != 1:
            raise ValueError(f"{key} batch {batch}: {len(base)} timings of sglang's launch "
                             "(records of one run, sglang's launch included, are needed)")  # fmt: skip
        best_c, best_m = min(rows, key=lambda r: r[1]["median_us"])
        if best_m["median_us"] < base[0] * (1 - margin):
            cfg, us = parse_config(best_c["stage1"]), best_m["median_us"]
        else:
            cfg, us = SGLANG_STAGE1, base[0]
        out[key].append(Bucket(batch_max=batch, stage1=cfg, us=round(us, 2),
                               sglang_us=round(base[0], 2)))  # fmt: skip
    return dict(out)


def write_table(
    path: Path,
    device_name: str,
    shapes: Mapping[str, Sequence[Bucket]],
    *,
    triton_version: str | None = None,
    notes: Mapping[str, Any] | None = None,
) -> None:
    """Merge ``shapes`` (key -> buckets) into the table at ``path`` (other keys kept)."""
    rows = {k: [b.to_dict() for b in v] for k, v in shapes.items()}
    merge_table(path, device_name, rows, _parse, triton_version=triton_version, notes=notes)
    load_table.cache_clear()
    _cuda_launch.cache_clear()
