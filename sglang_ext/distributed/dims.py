"""The one distributed start-up (engine, benches, profiler, tests) and the engine's groups.

:func:`init_distributed` joins the torchrun-style env:// rendezvous (torchrun, or
``perf.dist_env.run_spawned``'s parent store), or makes a world of one with no network at
all; gloo on CPU, NCCL on CUDA, with a timeout so a dead peer is an error, not a hang.

The SP+PP engine cuts the sequence into chunks (sequence parallelism in time, not in
ranks), so its only rank dimension is the pipeline: one stage per rank.  Two groups span
the same ranks: ``pipeline`` carries stage-to-stage activations, ``kv_sync`` carries the
KV-cache exchange, so that the two never interleave on one communicator.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["EngineGroups", "init_distributed", "build_engine_groups"]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class EngineGroups:
    """The engine's groups; ranks within them equal the stage index."""

    pipeline: dist.ProcessGroup
    kv_sync: dist.ProcessGroup
    backend: str


def init_distributed(device: str, timeout_s: float) -> tuple[int, int, torch.device]:
    """Join the torchrun-style rendezvous (env://); gloo on CPU, NCCL on CUDA.

    A single process with no ``RANK`` in the environment becomes a world of one.
    Returns (rank, world_size, device).
    """
    alone = "RANK" not in os.environ  # a world of one: an in-process store, no port at all
    backend = "nccl" if device == "cuda" else "gloo"
    dev = torch.device("cpu")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda but torch sees no CUDA device; use --device cpu")
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        kw = {"device_id": dev} if device == "cuda" else {}
        if alone:
            kw.update(store=dist.HashStore(), rank=0, world_size=1)
        dist.init_process_group(backend, timeout=_dt.timedelta(seconds=timeout_s), **kw)
    return dist.get_rank(), dist.get_world_size(), dev


def build_engine_groups(timeout_s: float) -> EngineGroups:
    """Two groups over all ranks (a collective call: every rank must make it)."""
    backend = dist.get_backend()
    timeout = _dt.timedelta(seconds=timeout_s)
    ranks = list(range(dist.get_world_size()))
    pipeline = dist.new_group(ranks, timeout=timeout, backend=backend)
    kv_sync = dist.new_group(ranks, timeout=timeout, backend=backend)
    return EngineGroups(pipeline=pipeline, kv_sync=kv_sync, backend=backend)
