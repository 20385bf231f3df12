"""run_spawned: store rendezvous without a pre-picked port, and one overall deadline.

A rank that raises, exits or hangs must end the call with an error naming that rank, and
no rank may outlive the call (checked with psutil).
"""

from __future__ import annotations

import os
import sys
import time

import psutil
import pytest
import torch
import torch.distributed as dist

from sglang_ext.perf.dist_env import run_spawned


def _allreduce(rank: int, out: str) -> None:
    dist.init_process_group("gloo")  # env:// on the parent's store
    x = torch.tensor([float(rank + 1)])
    dist.all_reduce(x)
    with open(f"{out}/rank{rank}", "w") as f:
        f.write(f"{x.item()} {os.getpid()}")
    dist.destroy_process_group()


def _misbehave(rank: int, bad: int, how: str, out: str) -> None:
    with open(f"{out}/pid{rank}", "w") as f:
        f.write(str(os.getpid()))
    if rank == bad:
        t_end = time.monotonic() + 60  # misbehave only once every rank has written its pid
        while len(os.listdir(out)) < 2 and time.monotonic() < t_end:
            time.sleep(0.05)
        if how == "raise":
            raise ValueError("boom from the test")
        if how == "exit":
            sys.stdout.flush()
            os._exit(3)
    elif how == "hang":
        return  # the healthy rank finishes; the bad one sleeps below
    time.sleep(120)  # the others (and a hanging rank) just wait


def _pids(out) -> list[int]:
    return [int(p.read_text()) for p in out.glob("pid*")]


def _none_alive(pids: list[int]) -> bool:
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
    return not alive


def test_gloo_rendezvous_on_the_parents_store(tmp_path):
    run_spawned(_allreduce, 3, str(tmp_path), deadline_s=120)
    got = sorted(tmp_path.glob("rank*"))
    assert [p.name for p in got] == ["rank0", "rank1", "rank2"]
    assert {p.read_text().split()[0] for p in got} == {"6.0"}  # 1 + 2 + 3 on every rank


@pytest.mark.parametrize(
    "how,exc,msg,deadline",
    [
        ("raise", RuntimeError, r"rank 1 of 2 failed:(.|\n)*boom from the test", 120),
        ("exit", RuntimeError, r"rank 1 of 2 died \(exit code 3", 120),
        # rank 0 returns at once, rank 1 hangs: only rank 1 is named
        (
            "hang",
            TimeoutError,
            r"rank\(s\) \[1\] of 2 still running after the 20 s deadline "
            r"\(finished: \[0\]\)",
            20,
        ),
    ],
)
def test_dead_or_hung_rank_is_named_and_nothing_survives(tmp_path, how, exc, msg, deadline):
    t0 = time.monotonic()
    with pytest.raises(exc, match=msg):
        run_spawned(_misbehave, 2, 1, how, str(tmp_path), deadline_s=deadline)
    elapsed = time.monotonic() - t0
    # The ranks would sleep 120 s.  A dead rank must end the call long before the 120 s
    # deadline (start-up of two ranks takes ~3-10 s on 2 cores); a hung one right after
    # the 20 s deadline (plus the 1 s stack dump and the kills).
    assert elapsed < (100 if how != "hang" else 55), f"{how}: took {elapsed:.0f}s"
    pids = _pids(tmp_path)
    assert len(pids) == 2, f"both ranks should have started: {pids}"
    assert _none_alive(pids), f"ranks survived run_spawned: {pids}"
