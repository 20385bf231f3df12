"""Process-group set-up for benches: torchrun env, a single process, or locally spawned ranks.

Every rank gets a timeout so a crashed peer ends the run with an error instead of a hang.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .server_process import free_port

__all__ = ["init_dist", "spawn_ranks", "bench_device"]


def bench_device(backend: str) -> torch.device:
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def init_dist(
    backend: str | None = None, *, timeout_s: float = 300.0
) -> tuple[dist.ProcessGroup, torch.device]:
    """Join the torchrun group (or make a world of one); returns (group, device)."""
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend nccl needs CUDA; use --backend gloo on CPU")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))
    device = bench_device(backend)
    if not dist.is_initialized():
        kw: dict[str, Any] = {"device_id": device} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s), **kw)
    group = dist.new_group(list(range(dist.get_world_size())), backend=backend)
    return group, device


def _entry(rank: int, world: int, port: int, fn: Callable, args: tuple, timeout_s: float) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    group, device = init_dist("gloo", timeout_s=timeout_s)
    try:
        fn(rank, group, device, *args)
    finally:
        dist.destroy_process_group()


def spawn_ranks(fn: Callable, world: int, *args: Any, timeout_s: float = 120.0) -> None:
    """Run ``fn(rank, group, device, *args)`` on ``world`` local gloo ranks (CPU).

    ``fn`` must be picklable (module level).  A failing rank fails the call; the others
    stop at their next collective when the gloo timeout expires or their peer is gone.
    """
    mp.start_processes(
        _entry,
        args=(world, free_port(), fn, args, timeout_s),
        nprocs=world,
        start_method="spawn",
        join=True,
    )
