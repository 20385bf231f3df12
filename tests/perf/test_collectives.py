"""Collective sweep on 2 gloo ranks; byte counts and busbw against nccl-tests, by hand."""

import json

import pytest
import torch

from sglang_ext.perf.collectives import (
    CollectiveConfig,
    bus_factor,
    op_bytes,
    run_sweep,
    size_sweep,
)
from sglang_ext.perf.devbw import device_copy_bw
from sglang_ext.perf.dist_env import spawn_ranks


def test_bus_factors_by_hand():
    # nccl-tests PERFORMANCE.md: allreduce 2(n-1)/n, allgather/reducescatter (n-1)/n, bcast 1
    assert bus_factor("all_reduce", 8) == 14 / 8
    assert bus_factor("all_gather", 8) == 7 / 8
    assert bus_factor("reduce_scatter", 4) == 3 / 4
    assert bus_factor("broadcast", 8) == 1.0
    assert bus_factor("all_reduce", 1) == 0.0


def test_sizes_and_counts_by_hand():
    assert size_sweep(1024, 1 << 30) == [1024 * 2**k for k in range(21)]  # 1 KB .. 1 GB
    # 1000 bytes of fp32 = 250 elements; all_gather over 3 ranks rounds to 249 = 3 * 83
    assert op_bytes("all_reduce", 1000, 3, 4) == (1000, 250)
    assert op_bytes("all_gather", 1000, 3, 4) == (996, 83)  # input per rank: 83 elements
    assert op_bytes("reduce_scatter", 1000, 3, 4) == (996, 249)  # full input on each rank
    assert op_bytes("broadcast", 2, 2, 4) == (4, 1)  # never below one element


def _worker(rank, group, device, path):
    cfg = CollectiveConfig(
        ops=("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv"),
        min_bytes=1024,
        max_bytes=8192,
        warmup=1,
        iters=3,
    )
    rows = run_sweep(cfg, group=group, device=device)
    if rank == 0:
        with open(path, "w") as f:
            json.dump(rows, f)


def test_two_gloo_ranks(tmp_path):
    path = tmp_path / "rows.json"
    spawn_ranks(_worker, 2, str(path))
    rows = json.loads(path.read_text())
    assert [(r["op"], r["size_bytes"]) for r in rows] == [
        (op, s)
        for op in ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv")
        for s in (1024, 2048, 4096, 8192)
    ]
    for r in rows:
        t = r["time_us"] / 1e6
        algbw = r["size_bytes"] / t / 1e9  # GB/s, 1e9 as nccl-tests
        factor = {
            "all_reduce": 2 * 1 / 2,
            "all_gather": 1 / 2,
            "reduce_scatter": 1 / 2,
            "broadcast": 1,
            "sendrecv": 1,
        }[r["op"]]
        assert r["algbw_gbps"] == pytest.approx(algbw, rel=1e-9)
        assert r["busbw_gbps"] == pytest.approx(algbw * factor, rel=1e-9)
        assert r["world_size"] == 2 and r["count"] == r["size_bytes"] // 4
        assert r["max_rank_time_us"] >= r["time_us"] * (0.999 if r["op"] != "sendrecv" else 0)


def test_device_copy_on_cpu():
    r = device_copy_bw(1 << 20, torch.device("cpu"), warmup=1, iters=3)
    assert r["bytes_moved"] == 2 * (1 << 20)
    assert r["bw_gbps"] == pytest.approx(r["bytes_moved"] / (r["time_us"] / 1e6) / 1e9)


def test_config_errors():
    with pytest.raises(ValueError, match="unknown collectives"):
        CollectiveConfig(ops=("alltoall",))
    with pytest.raises(ValueError, match="min_bytes"):
        CollectiveConfig(min_bytes=10, max_bytes=5)
    with pytest.raises(ValueError, match="torch dtype"):
        CollectiveConfig(dtype="float33")
