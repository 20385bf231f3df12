"""Process-group set-up for benches and tests: torchrun env, a single process, or local ranks.

Every rank gets a process-group timeout so a crashed peer ends the run with an error
instead of a hang, and :func:`run_spawned` puts one overall deadline on a group of
locally spawned ranks: a rank that dies or hangs ends the call with an error naming it,
and no rank outlives the call.

The rendezvous needs no port chosen in advance: the parent binds a ``TCPStore`` on port 0
(the kernel assigns it while it is bound, so nothing can take it in between) and the ranks
join it as clients, the way torchrun's agent hosts the store for its workers
(``TORCHELASTIC_USE_AGENT_STORE``).  A world of one uses an in-process ``HashStore``.
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

__all__ = ["init_dist", "spawn_ranks", "run_spawned"]

logger = logging.getLogger(__name__)


def init_dist(
    backend: str | None = None, *, timeout_s: float = 300.0
) -> tuple[dist.ProcessGroup, torch.device]:
    """Join the torchrun group (or make a world of one) through the one start-up,
    :func:`sglang_ext.distributed.dims.init_distributed`; returns (a group over every
    rank, this rank's device)."""
    from sglang_ext.distributed.dims import init_distributed

    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend not in ("nccl", "gloo"):
        raise ValueError(f"backend {backend!r}: use nccl (CUDA) or gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise ValueError("backend nccl needs CUDA; use --backend gloo on CPU")
    _, world, device = init_distributed("cuda" if backend == "nccl" else "cpu", timeout_s)
    group = dist.new_group(list(range(world)), backend=backend)
    return group, device


def _rank_entry(rank: int, fn: Callable, world: int, port: int, args: tuple) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        TORCHELASTIC_USE_AGENT_STORE="True",  # the parent hosts the store (see module doc)
    )
    # on the deadline the parent sends SIGUSR1 first: every thread's stack goes to stderr
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    fn(rank, *args)


def run_spawned(fn: Callable, world: int, *args: Any, deadline_s: float) -> None:
    """Run ``fn(rank, *args)`` in ``world`` spawned processes, all done within ``deadline_s``.

    Each rank finds the torch.distributed env (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``) set for an ``env://`` rendezvous on the parent's store.  A rank that
    raises or exits non-zero ends the call with ``RuntimeError`` naming it (the others are
    killed); ranks still running at the deadline get their stacks dumped, are killed, and
    the call raises ``TimeoutError`` naming them.  ``fn`` must be picklable (module level).
    """
    if world < 1:
        raise ValueError(f"world must be >= 1, got {world}")
    store = dist.TCPStore("127.0.0.1", 0, world, is_master=True, wait_for_workers=False)
    ctx = mp.start_processes(
        _rank_entry,
        args=(fn, world, store.port, args),
        nprocs=world,
        start_method="spawn",
        join=False,
    )
    t_end = time.monotonic() + deadline_s
    try:
        while True:
            left = t_end - time.monotonic()
            try:
                if ctx.join(timeout=max(0.05, min(1.0, left))):
                    return
            except mp.ProcessRaisedException as e:
                raise RuntimeError(f"rank {e.error_index} of {world} failed:\n{e}") from None
            except mp.ProcessExitedException as e:
                raise RuntimeError(
                    f"rank {e.error_index} of {world} died (exit code {e.exit_code}"
                    f"{', signal ' + e.signal_name if e.signal_name else ''})"
                ) from None
            if left <= 0:
                alive = [r for r, p in enumerate(ctx.processes) if p.is_alive()]
                for r in alive:
                    os.kill(ctx.processes[r].pid, signal.SIGUSR1)
                time.sleep(1.0)  # let faulthandler write the stacks
                done = [r for r in range(world) if r not in alive]
                raise TimeoutError(
                    f"rank(s) {alive} of {world} still running after the {deadline_s:.0f} s "
                    f"deadline (finished: {done or 'none'}); killed them, stacks on stderr"
                )
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
        for p in ctx.processes:
            p.join(5)
        del store


def _entry(rank: int, fn: Callable, args: tuple, timeout_s: float) -> None:
    group, device = init_dist("gloo", timeout_s=timeout_s)
    try:
        fn(rank, group, device, *args)
    finally:
        dist.destroy_process_group()


def spawn_ranks(
    fn: Callable, world: int, *args: Any, timeout_s: float = 120.0, deadline_s: float = 1800.0
) -> None:
    """Run ``fn(rank, group, device, *args)`` on ``world`` local gloo ranks (CPU).

    ``timeout_s`` is each collective's gloo timeout; ``deadline_s`` bounds the whole run
    (see :func:`run_spawned`).  ``fn`` must be picklable (module level).
    """
    run_spawned(_entry, world, fn, args, timeout_s, deadline_s=deadline_s)
