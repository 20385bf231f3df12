"""SingleExpertMoE's default compute path comes from the measured table, else cuBLAS.

The device name is faked (no GPU here); tables are hand-written.
"""

from __future__ import annotations

import json

import pytest
import torch

from sglang_ext.kernels import fused_mlp_dispatch as d
from sglang_ext.kernels.fused_mlp_ref import swiglu_mlp_ref
from sglang_ext.layers import SingleExpertMoE
from sglang_ext.layers import single_expert_moe as sem
from sglang_ext.serving.config import CONFIG_ENV, SingleExpertConfig, rank_config

CUDA = torch.device("cuda", 0)
BF16 = torch.bfloat16


@pytest.fixture(autouse=True)
def _fresh_rank_config(monkeypatch):
    """The kernel switch is read once per process (serving.config.rank_config)."""
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("SGLANG_EXT_FUSED_MLP", raising=False)
    rank_config.cache_clear()
    yield
    rank_config.cache_clear()


@pytest.fixture
def fake_gpu(tmp_path, monkeypatch):
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP_CONFIG_DIR", str(tmp_path))
    monkeypatch.setattr(sem, "_device_name", lambda device: "Fake GPU")
    p = d.dispatch_path("Fake GPU")
    p.parent.mkdir(parents=True)
    p.write_text(
        json.dumps(
            {
                "shapes": {
                    "H=2048,I=96": [
                        {"m_max": 16, "impl": "cuda_onelaunch"},
                        {"m_max": 64, "impl": "cuda_onelaunch"},  # beyond the CUDA kernel's M <= 32
                        {"m_max": 512, "impl": "triton_v2"},
                    ]
                }
            }
        )
    )


def test_default_follows_the_table(fake_gpu):
    got = {
        m: sem.default_impl(m, 2048, 96, BF16, CUDA) for m in (1, 16, 17, 32, 33, 64, 65, 512, 513)
    }
    assert got == {
        1: "cuda_onelaunch",
        16: "cuda_onelaunch",
        17: "cuda_onelaunch",
        32: "cuda_onelaunch",
        33: "cublas",
        64: "cublas",
        65: "triton_v2",
        512: "triton_v2",
        513: "cublas",
    }
    assert sem.default_impl(1, 2048, 96, torch.float16, CUDA) == "cuda_onelaunch"


def test_cublas_where_there_is_no_measurement(fake_gpu, monkeypatch):
    assert sem.default_impl(1, 4096, 192, BF16, CUDA) == "cublas"  # shape not in table
    assert sem.default_impl(1, 2048, 96, torch.float32, CUDA) == "cublas"  # not measured
    assert sem.default_impl(1, 2048, 96, BF16, torch.device("cpu")) == "cublas"
    assert sem.default_impl(0, 2048, 96, BF16, CUDA) == "cublas"
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP", "0")
    rank_config.cache_clear()  # the switch is read once per process
    assert sem.default_impl(1, 2048, 96, BF16, CUDA) == "cublas"
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP", "1")
    rank_config.cache_clear()
    assert sem.default_impl(1, 2048, 96, BF16, CUDA) == "cuda_onelaunch"
    monkeypatch.setenv(CONFIG_ENV, SingleExpertConfig(fused_mlp=False).to_json())
    rank_config.cache_clear()  # what launch_server hands the ranks wins over the variable
    assert sem.default_impl(1, 2048, 96, BF16, CUDA) == "cublas"
    monkeypatch.delenv(CONFIG_ENV)
    rank_config.cache_clear()
    monkeypatch.setattr(sem, "_device_name", lambda device: "Unknown GPU")
    assert sem.default_impl(1, 2048, 96, BF16, CUDA) == "cublas"


def test_cpu_default_is_torch_and_matches_float64():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 64, generator=gen)
    w13 = torch.randn(48, 64, generator=gen) / 8
    w2 = torch.randn(64, 24, generator=gen) / 5
    out = sem.swiglu_mlp(x, w13, w2)
    ref = swiglu_mlp_ref(x.double(), w13.double(), w2.double())
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


def test_forced_kernel_that_cannot_run_is_an_error():
    x, w13, w2 = torch.randn(2, 16), torch.randn(48, 16), torch.randn(16, 24)
    with pytest.raises(RuntimeError, match="use_kernel='cuda_onelaunch'.*use_kernel=None"):
        sem.swiglu_mlp(x, w13, w2, use_kernel="cuda_onelaunch")
    with pytest.raises(ValueError, match="use_kernel='fast'"):
        SingleExpertMoE(
            hidden_size=16, intermediate_size=24, mode="tp", rank=0, world_size=1, use_kernel="fast"
        )


def test_cublas_mlp_gemms_go_through_the_gemv_dispatch_unless_switched_off(monkeypatch):
    """The default cuBLAS MLP sends its two GEMMs to ``gemv_dispatch.linear`` (which runs the
    skinny GEMM only where its table says, and F.linear on the CPU); ``use_kernel=False``
    and ``SGLANG_EXT_FUSED_MLP=0`` keep plain F.linear.  A spy counts the calls; the
    output is checked against float64 each time."""
    from sglang_ext.kernels import gemv_dispatch

    calls = []
    real = gemv_dispatch.linear
    monkeypatch.setattr(gemv_dispatch, "linear",
                        lambda x, w, b=None: calls.append(tuple(w.shape)) or real(x, w, b))  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(3, 64, generator=gen)
    w13, w2 = torch.randn(48, 64, generator=gen) / 8, torch.randn(64, 24, generator=gen) / 5
    ref = swiglu_mlp_ref(x.double(), w13.double(), w2.double())

    def run(fn=sem.swiglu_mlp, **kw):
        calls.clear()
        torch.testing.assert_close(fn(x, w13, w2, **kw).double(), ref,
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
        return list(calls)

    assert run() == [(48, 64), (64, 24)]
    assert run(use_kernel=False) == []
    # the dispatch table's reference (tune.measure_dispatch) is this served path
    assert run(sem.served_torch_mlp) == [(48, 64), (64, 24)]
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP", "0")
    rank_config.cache_clear()
    assert run() == []
