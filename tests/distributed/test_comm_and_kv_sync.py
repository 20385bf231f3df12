"""Degrees validation, comm helpers and both KV-sync strategies on 3 spawned gloo ranks."""

from __future__ import annotations

import pytest
import torch

from sglang_ext.engine.kv_sync import STRATEGIES, get_strategy
from sglang_ext.perf.dist_env import run_spawned

SIZES = [2, 1, 3]  # uneven stages: layers per rank


def _stage_kv(s: int) -> torch.Tensor:
    # [n_layers_s, 2, P, Hkv, d], distinct per stage, reproducible on every rank
    g = torch.Generator().manual_seed(100 + s)
    return torch.randn(SIZES[s], 2, 5, 2, 4, generator=g)


def _worker(rank: int, world: int, out: str) -> None:
    from sglang_ext.distributed import comm
    from sglang_ext.distributed.dims import build_engine_groups, init_distributed

    init_distributed("cpu", 30.0)
    g = build_engine_groups(30.0)
    res = {}
    for name in sorted(STRATEGIES):
        bufs, sent = get_strategy(name).exchange(_stage_kv(rank), SIZES, group=g.kv_sync)
        res[name] = ([b.clone() for b in bufs], sent)
    x = torch.full((2,), float(rank))
    y = torch.empty(2)
    comm.ring_shift(x, y, group=g.pipeline)
    res["ring_shift"] = y
    h = torch.full((3,), float(rank))
    res["broadcast"] = comm.broadcast(h, world - 1, group=g.pipeline).clone()
    torch.save(res, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_strategies_and_comm(tmp_path):
    world = len(SIZES)
    # 3 ranks start in ~10 s and exchange a few small tensors; 120 s is far above that but
    # well below pytest's timeout, and a hang or a dead rank fails naming the rank
    run_spawned(_worker, world, world, str(tmp_path), deadline_s=120)
    for r in range(world):
        res = torch.load(tmp_path / f"rank{r}.pt")
        for name in STRATEGIES:
            bufs, sent = res[name]
            assert sent > 0, name
            for s in range(world):
                torch.testing.assert_close(
                    bufs[s], _stage_kv(s), rtol=0, atol=0, msg=f"{name}: rank {r} stage {s}"
                )
        assert res["ring_shift"].tolist() == [float((r - 1) % world)] * 2
        assert res["broadcast"].tolist() == [float(world - 1)] * 3


def test_unknown_strategy():
    with pytest.raises(ValueError, match="pairwise"):
        get_strategy("tree")
