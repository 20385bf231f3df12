"""The one timer on a CUDA GPU: its do_bench medians (eager, CUDA-graph replay, the 1 GiB
copy) against a copy timed here with bare CUDA events.  Skipped without CUDA (conftest)."""

from __future__ import annotations

import statistics

import pytest
import torch

from sglang_ext.perf.timing import copy_us, time_eager, time_graph, time_iters

pytestmark = pytest.mark.gpu

N = 1 << 27  # 256 MiB of bf16 per buffer: ~100 us a copy, launch costs are noise


def _events_us(fn, iters: int = 50) -> float:
    """Median µs of ``fn`` from one pair of CUDA events per call (the reference)."""
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    out = []
    for _ in range(iters):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        e.synchronize()
        out.append(s.elapsed_time(e) * 1e3)
    return statistics.median(out)


def test_copy_timed_four_ways_agrees():
    sets = [
        (
            torch.randn(N, device="cuda", dtype=torch.bfloat16),
            torch.empty(N, device="cuda", dtype=torch.bfloat16),
        )
        for _ in range(2)
    ]

    def call(s):
        return s[1].copy_(s[0])

    ref = _events_us(lambda: call(sets[0]))
    iters_us = statistics.median(time_iters(lambda: call(sets[0]), device=torch.device("cuda")))
    assert iters_us * 1e6 == pytest.approx(ref, rel=0.25)
    assert time_eager(call, sets) == pytest.approx(ref, rel=0.25)
    assert time_graph(call, sets) == pytest.approx(ref, rel=0.25)


def test_copy_us_bandwidth_matches_events():
    us, nbytes = copy_us()
    assert nbytes == 2 << 30  # 1 GiB read + 1 GiB written
    src = torch.randn(1 << 29, device="cuda", dtype=torch.bfloat16)
    dst = torch.empty_like(src)
    ref = _events_us(lambda: dst.copy_(src), iters=20)
    assert us == pytest.approx(ref, rel=0.25)
