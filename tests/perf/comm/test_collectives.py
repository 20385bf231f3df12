"""Collectives: byte counts, algbw and busbw against nccl-tests' definitions, by hand.

The gloo run uses a fixed clock, so the bandwidth numbers are exact hand-computed values
while the collectives themselves still run and are checked for correct results.
"""

import json

import pytest
import torch
import torch.distributed as dist

from sglang_ext.perf.comm.collectives import (
    CollectiveConfig,
    bandwidth_row,
    bus_factor,
    op_bytes,
    run_sweep,
    size_sweep,
)
from sglang_ext.perf.comm.devbw import device_copy_bw
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


def test_bandwidth_row_by_hand():
    # nccl-tests doc/PERFORMANCE.md: algbw = S / t (GB = 1e9 B); busbw = algbw * factor;
    # t = mean of the ranks' times.  Every expected number below was worked out by hand.
    # all_reduce, 8 ranks, S = 1 MiB, seven ranks at 100 us and one at 300 us: t = 125 us
    r = bandwidth_row("all_reduce", 1 << 20, [100e-6] * 7 + [300e-6], "float32", 4)
    assert r["time_us"] == pytest.approx(125.0)
    assert r["algbw_gbps"] == pytest.approx(8.388608)  # 1048576 B / 125 us
    assert r["busbw_gbps"] == pytest.approx(14.680064)  # x 2*7/8 = 1.75
    assert r["max_rank_time_us"] == pytest.approx(300.0)
    assert (r["count"], r["world_size"]) == (262144, 8)
    # all_gather, 4 ranks, S = 16384 B (the gathered output), 2 us: 8.192 GB/s, x 3/4
    r = bandwidth_row("all_gather", 16384, [2e-6] * 4, "float32", 4)
    assert (r["algbw_gbps"], r["busbw_gbps"]) == pytest.approx((8.192, 6.144))
    # reduce_scatter, 2 ranks, S = 8192 B (each rank's full input), 4 us: 2.048, x 1/2
    r = bandwidth_row("reduce_scatter", 8192, [4e-6, 4e-6], "bfloat16", 2)
    assert (r["algbw_gbps"], r["busbw_gbps"], r["count"]) == pytest.approx((2.048, 1.024, 4096))
    # broadcast, 8 ranks, S = 1e6 B, 1 ms: 1 GB/s, factor 1
    r = bandwidth_row("broadcast", 10**6, [1e-3] * 8, "float32", 4)
    assert (r["algbw_gbps"], r["busbw_gbps"]) == pytest.approx((1.0, 1.0))
    # sendrecv on 4 ranks: only ranks 0 and 1 take part; t = the slower of them (20 us),
    # the idle ranks' 1 s does not count: 1e6 B / 20 us = 50 GB/s, factor 1
    r = bandwidth_row("sendrecv", 10**6, [10e-6, 20e-6, 1.0, 1.0], "float32", 4)
    assert (r["time_us"], r["algbw_gbps"], r["busbw_gbps"]) == pytest.approx((20.0, 50.0, 50.0))


def _fixed_times(fn, *, device, warmup, iters, barrier=None):
    """Stand-in for time_iters: rank r takes (r + 1) ms per call, whatever the machine does."""
    for _ in range(warmup):
        fn()
    return [(dist.get_rank() + 1) * 1e-3] * iters


def _worker(rank, group, device, path):
    import sglang_ext.perf.comm.collectives as coll

    coll.time_iters = _fixed_times  # the collectives still run once and are checked (check=True)
    cfg = CollectiveConfig(
        ops=("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv"),
        min_bytes=1024,
        max_bytes=2048,
        warmup=1,
        iters=3,
    )
    rows = run_sweep(cfg, group=group, device=device)
    if rank == 0:
        with open(path, "w") as f:
            json.dump(rows, f)


def test_two_gloo_ranks_with_a_fixed_clock(tmp_path):
    path = tmp_path / "rows.json"
    spawn_ranks(_worker, 2, str(path), deadline_s=180)
    rows = {(r["op"], r["size_bytes"]): r for r in json.loads(path.read_text())}
    ops = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "sendrecv")
    assert sorted(rows) == sorted((op, s) for op in ops for s in (1024, 2048))
    # rank 0 takes 1 ms, rank 1 2 ms: t = 1.5 ms (mean), sendrecv 2 ms (the slower).
    # 1024 B / 1.5 ms = 6.8267e-4 GB/s; 2048 B: 1.36533e-3; over 2 ms: 5.12e-4, 1.024e-3.
    # busbw on 2 ranks: all_reduce x 2*1/2 = 1, all_gather/reduce_scatter x 1/2, others x 1.
    want = {
        ("all_reduce", 1024): (1500.0, 6.826666666666667e-4, 6.826666666666667e-4),
        ("all_reduce", 2048): (1500.0, 1.3653333333333333e-3, 1.3653333333333333e-3),
        ("all_gather", 1024): (1500.0, 6.826666666666667e-4, 3.4133333333333335e-4),
        ("reduce_scatter", 2048): (1500.0, 1.3653333333333333e-3, 6.826666666666667e-4),
        ("broadcast", 1024): (1500.0, 6.826666666666667e-4, 6.826666666666667e-4),
        ("sendrecv", 1024): (2000.0, 5.12e-4, 5.12e-4),
        ("sendrecv", 2048): (2000.0, 1.024e-3, 1.024e-3),
    }
    for key, (t_us, algbw, busbw) in want.items():
        r = rows[key]
        got = (r["time_us"], r["algbw_gbps"], r["busbw_gbps"])
        assert got == pytest.approx((t_us, algbw, busbw), rel=1e-9), key
        assert r["max_rank_time_us"] == pytest.approx(2000.0), key
        assert r["world_size"] == 2 and r["count"] == r["size_bytes"] // 4, key


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
