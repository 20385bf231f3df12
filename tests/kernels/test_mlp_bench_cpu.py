"""CPU checks of the kernel bench's arithmetic and config (no GPU needed)."""

import pytest

from sglang_ext.perf.kernel_bench.mlp import MlpBenchConfig
from sglang_ext.perf.kernel_bench.roofline import roofline_floor_us, weight_floor_us
from sglang_ext.perf.kernel_bench.tune import candidates


def test_weight_floor_hand_computed():
    # 30B TP8 shard: w13 2*96*2048 + w2 2048*96 bf16 = 3*2048*96*2 = 1,179,648 bytes;
    # at 4250 GB/s (H200 copy) = 0.27756 us; 235B TP1: 3*4096*1536*2 = 37,748,736 B -> 8.882 us
    assert weight_floor_us(2048, 96, 2, 4250.0) == pytest.approx(0.277564, rel=1e-5)
    assert weight_floor_us(4096, 1536, 2, 4250.0) == pytest.approx(8.882055, rel=1e-5)


def test_roofline_floor_hand_computed():
    # M=16384, 30B TP1: flops 6*16384*2048*768 = 1.546e11 at 700 TFLOP/s = 220.9 us (compute)
    f = roofline_floor_us(16384, 2048, 768, 2, {"gemm_tflops": 700.0, "copy_gbps": 4250.0})
    assert f["bound"] == "compute" and f["floor_us"] == pytest.approx(220.87, rel=1e-3)


def test_bench_config_rejects_bad_values():
    with pytest.raises(ValueError, match="modes"):
        MlpBenchConfig(modes=["fast"])
    with pytest.raises(ValueError, match="not divisible by tp=5"):
        MlpBenchConfig(tps=[5])


def test_bounded_candidates_are_a_subset():
    for m in (1, 32, 256, 4096):
        full = candidates(m, 2048, 96, 132)
        small = candidates(m, 2048, 96, 132, bounded=True)
        assert small and set(small) <= set(full) and len(small) <= 20, m
