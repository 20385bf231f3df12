"""Collective and point-to-point bandwidth, with nccl-tests' size and bandwidth definitions.

From nccl-tests ``doc/PERFORMANCE.md`` (n = ranks, S = size in bytes, t = time):
  algbw = S / t
  all_reduce      S = bytes of each rank's buffer;      busbw = algbw * 2(n-1)/n
  all_gather      S = bytes of the gathered output;      busbw = algbw * (n-1)/n
  reduce_scatter  S = bytes of each rank's full input;   busbw = algbw * (n-1)/n
  broadcast       S = bytes of the buffer;               busbw = algbw
  sendrecv        S = bytes sent by rank 0 to rank 1;    busbw = algbw
GB/s are 1e9 bytes/s, as in nccl-tests.  Each size is timed ``iters`` times after
``warmup`` (CUDA events on GPU, perf_counter + barrier on CPU); a rank's time is the
median over iterations and the reported time is the mean over ranks (nccl-tests' default
``-a 1``); the slowest rank's median is kept as ``max_rank_time_us``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist

from sglang_ext.cli import parse_size
from sglang_ext.perf.timing import median, time_iters

__all__ = [
    "CollectiveConfig",
    "COLLECTIVES",
    "bus_factor",
    "op_bytes",
    "size_sweep",
    "bandwidth_row",
    "run_collective",
    "run_sweep",
]

logger = logging.getLogger(__name__)
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv")


@dataclass(kw_only=True, slots=True)
class CollectiveConfig:
    """A sweep of collectives over message sizes."""

    ops: tuple[str, ...] = field(
        default=("all_reduce", "all_gather", "reduce_scatter", "broadcast"),
        metadata={"help": f"collectives to time, of {COLLECTIVES}"},
    )
    min_bytes: int = field(
        default=1024,
        metadata={"help": "smallest size S (bytes; 64K, 16M, 1G)", "parse": parse_size},
    )
    max_bytes: int = field(
        default=1 << 30,
        metadata={"help": "largest size S (bytes; 64K, 16M, 1G)", "parse": parse_size},
    )
    factor: int = field(default=2, metadata={"help": "size multiplier between steps"})
    dtype: str = field(default="float32", metadata={"help": "element type (torch name)"})
    warmup: int = field(default=5, metadata={"help": "untimed iterations per size"})
    iters: int = field(default=20, metadata={"help": "timed iterations per size"})
    check: bool = field(default=True, metadata={"help": "verify each result once per op"})

    def __post_init__(self) -> None:
        bad = [op for op in self.ops if op not in COLLECTIVES]
        if bad:
            raise ValueError(f"unknown collectives {bad}; choose from {COLLECTIVES}")
        if not 0 < self.min_bytes <= self.max_bytes:
            raise ValueError(
                f"need 0 < min_bytes <= max_bytes, got {self.min_bytes}, {self.max_bytes}"
            )
        if self.factor < 2:
            raise ValueError(f"factor must be >= 2, got {self.factor}")
        if not isinstance(getattr(torch, self.dtype, None), torch.dtype):
            raise ValueError(
                f"dtype {self.dtype!r} is not a torch dtype name (e.g. float32, bfloat16)"
            )
        if self.iters < 1 or self.warmup < 0:
            raise ValueError(f"need iters >= 1, warmup >= 0; got {self.iters}, {self.warmup}")


def bus_factor(op: str, n: int) -> float:
    """nccl-tests' busbw / algbw for ``op`` on ``n`` ranks."""
    if n < 1:
        raise ValueError(f"world size must be >= 1, got {n}")
    return {
        "all_reduce": 2 * (n - 1) / n,
        "all_gather": (n - 1) / n,
        "reduce_scatter": (n - 1) / n,
        "broadcast": 1.0,
        "sendrecv": 1.0,
    }[op]


def op_bytes(op: str, nbytes: int, n: int, itemsize: int) -> tuple[int, int]:
    """(S actually used, per-rank element count of the *input*) for a requested size.

    S is rounded down to whole elements and, for all_gather/reduce_scatter, to a
    multiple of ``n`` elements (nccl-tests does the same); never below one element per rank.
    """
    count = max(nbytes // itemsize, 1)
    if op in ("all_gather", "reduce_scatter"):
        count = max(count // n, 1) * n
        per_rank_in = count // n if op == "all_gather" else count
        return count * itemsize, per_rank_in
    return count * itemsize, count


def size_sweep(min_bytes: int, max_bytes: int, factor: int = 2) -> list[int]:
    out, s = [], min_bytes
    while s <= max_bytes:
        out.append(s)
        s *= factor
    return out


def _make_op(
    op: str,
    count: int,
    n: int,
    rank: int,
    dtype: torch.dtype,
    device: torch.device,
    group: dist.ProcessGroup,
):
    x = torch.full((count,), float(rank + 1), dtype=dtype, device=device)
    if op == "all_reduce":
        return (lambda: dist.all_reduce(x, group=group)), x, None
    if op == "all_gather":
        out = torch.empty(count * n, dtype=dtype, device=device)
        return (lambda: dist.all_gather_into_tensor(out, x, group=group)), x, out
    if op == "reduce_scatter":
        out = torch.empty(count // n, dtype=dtype, device=device)
        return (lambda: dist.reduce_scatter_tensor(out, x, group=group)), x, out
    if op == "broadcast":
        src = dist.get_global_rank(group, 0)
        return (lambda: dist.broadcast(x, src=src, group=group)), x, None
    if op == "sendrecv":
        peer = dist.get_global_rank(group, 1 - rank) if rank < 2 else None

        def sendrecv() -> None:
            if rank == 0:
                dist.send(x, dst=peer, group=group)
            elif rank == 1:
                dist.recv(x, src=peer, group=group)

        return sendrecv, x, None
    raise ValueError(op)


def _check(op: str, n: int, rank: int, x: torch.Tensor, out: torch.Tensor | None) -> None:
    """After one call on fresh buffers: compare with the closed-form result."""
    tot = n * (n + 1) / 2  # sum of (rank + 1)
    if op == "all_reduce":
        ok = torch.all(x == tot)
    elif op == "all_gather":
        want = torch.arange(1, n + 1, dtype=out.dtype, device=out.device).repeat_interleave(
            out.numel() // n
        )
        ok = torch.equal(out, want)
    elif op == "reduce_scatter":
        ok = torch.all(out == tot)
    elif op == "broadcast":
        ok = torch.all(x == 1.0)
    else:
        ok = torch.all(x == 1.0) if n >= 2 and rank < 2 else True
    if not bool(ok):
        raise RuntimeError(
            f"{op} on rank {rank}/{n} returned a wrong result: the backend is broken"
        )


def run_collective(
    op: str, nbytes: int, cfg: CollectiveConfig, *, group: dist.ProcessGroup, device: torch.device
) -> dict[str, Any]:
    """Time ``op`` at size ``nbytes``; every rank of ``group`` must call this."""
    n, rank = dist.get_world_size(group=group), dist.get_rank(group=group)
    dtype = getattr(torch, cfg.dtype)
    itemsize = torch.empty((), dtype=dtype).element_size()
    s_bytes, count = op_bytes(op, nbytes, n, itemsize)
    fn, x, out = _make_op(op, count, n, rank, dtype, device, group)
    if cfg.check:
        fn()
        _check(op, n, rank, x, out)
    times = time_iters(
        fn,
        device=device,
        warmup=cfg.warmup,
        iters=cfg.iters,
        barrier=(lambda: dist.barrier(group=group)) if device.type != "cuda" else None,
    )
    mine = torch.tensor([median(times)], dtype=torch.float64, device=device)
    every = torch.empty(n, dtype=torch.float64, device=device)
    dist.all_gather_into_tensor(every, mine, group=group)
    return bandwidth_row(op, s_bytes, every.tolist(), cfg.dtype, itemsize)


def bandwidth_row(
    op: str, s_bytes: int, per_rank_s: list[float], dtype: str, itemsize: int
) -> dict[str, Any]:
    """One record from each rank's median time (seconds), nccl-tests' definitions.

    The time is the mean over ranks (sendrecv: the slower of ranks 0 and 1, the only two
    that take part); algbw = S / time; busbw = algbw * :func:`bus_factor`.
    """
    n = len(per_rank_s)
    t_s = max(per_rank_s[:2]) if op == "sendrecv" else sum(per_rank_s) / n
    algbw = s_bytes / t_s / 1e9
    return {
        "op": op,
        "world_size": n,
        "size_bytes": s_bytes,
        "count": s_bytes // itemsize,
        "dtype": dtype,
        "time_us": t_s * 1e6,
        "max_rank_time_us": max(per_rank_s) * 1e6,
        "algbw_gbps": algbw,
        "busbw_gbps": algbw * bus_factor(op, n),
    }


def run_sweep(
    cfg: CollectiveConfig, *, group: dist.ProcessGroup, device: torch.device
) -> list[dict[str, Any]]:
    """All ops of ``cfg`` over all sizes; identical list on every rank."""
    rows = []
    n = dist.get_world_size(group=group)
    for op in cfg.ops:
        if op == "sendrecv" and n < 2:
            logger.warning("sendrecv needs >= 2 ranks (world size %d): skipped", n)
            continue
        for nbytes in size_sweep(cfg.min_bytes, cfg.max_bytes, cfg.factor):
            rows.append(run_collective(op, nbytes, cfg, group=group, device=device))
            r = rows[-1]
            logger.info(
                "%-14s %12d B %10.1f us algbw %8.2f busbw %8.2f GB/s",
                op,
                r["size_bytes"],
                r["time_us"],
                r["algbw_gbps"],
                r["busbw_gbps"],
            )
    return rows
