"""``norm_gemv`` (RMSNorm in the linear's prologue, optional SwiGLU) vs float64 on the CPU
interpreter, the plain-torch reference it replaces, and its refusals.

float32 and float16; M 1, 3, 17, 32; (N, K) (48, 64), (100, 264), (256, 1032); tensor-core and
CUDA-core launches whose blocks do not divide N or K; with and without a residual; plain and
SwiGLU; dense and NaN-padded rows.  Cases and tolerances: ``_gemv_interpret_worker`` (one child
process, group ``norm``).
"""

import pytest
import torch
from _gemv_interpret_worker import norm_case_ids, run_worker

from sglang_ext.kernels.gemv import GemvConfig
from sglang_ext.kernels.norm_gemv import norm_gemv, swiglu_config
from sglang_ext.kernels.norm_gemv_ref import norm_gemv_ref


@pytest.mark.parametrize("case", norm_case_ids())
def test_norm_gemv_matches_float64(case):
    res = run_worker("norm")
    if "__crash__" in res:
        pytest.fail(res["__crash__"])
    assert case in res, f"worker did not run {case}"
    assert res[case] is None, f"{case}: {res[case]}"


@pytest.mark.parametrize("swiglu", [False, True])
@pytest.mark.parametrize("with_res", [False, True])
def test_reference_is_the_separate_ops(swiglu, with_res):
    """The reference against float64 by hand: norm, linear, silu * up (float32 inputs)."""
    g = torch.Generator().manual_seed(1)
    x, r = torch.randn(3, 40, generator=g), torch.randn(3, 40, generator=g)
    nw, w = torch.rand(40, generator=g) + 0.5, torch.randn(24, 40, generator=g)
    y, new_res = norm_gemv_ref(x, r if with_res else None, nw, 1e-5, w, swiglu=swiglu)
    s = x.double() + (r.double() if with_res else 0)
    h = s / (s.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt() * nw.double()
    want = h @ w.double().T
    if swiglu:
        want = torch.nn.functional.silu(want[:, :12]) * want[:, 12:]
    assert torch.allclose(y.double(), want, rtol=1e-5, atol=1e-5)
    assert torch.allclose(new_res.double(), s)


def test_swiglu_config_keeps_the_bytes_per_program():
    assert swiglu_config(GemvConfig.parse("n4k2048w4s2d0")).name == "n2k2048w4s2d0"
    assert swiglu_config(GemvConfig.parse("n1k2048w1s2d0")).name == "n1k2048w1s2d0"
    assert swiglu_config(GemvConfig.parse("n16k512w2s3d1")).name == "n16k512w2s3d1"  # tl.dot
    assert swiglu_config(GemvConfig.parse("n64k128w4s3d1")).name == "n32k128w4s3d1"


def _t(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((_t(33, 64), None, _t(64), 1e-6, _t(48, 64)), {}, "M=33 tokens > 32"),
        ((_t(2, 64), _t(2, 32), _t(64), 1e-6, _t(48, 64)), {}, r"residual must be \[2, 64\]"),
        ((_t(2, 64), None, _t(63), 1e-6, _t(48, 64)), {}, r"norm_weight must be a contiguous \[64\]"),
        ((_t(2, 64), None, _t(64, dtype=torch.float16), 1e-6, _t(48, 64)), {}, "norm_weight is torch.float16"),
        ((_t(2, 64), None, _t(64), 1e-6, _t(47, 64)), {"swiglu": True}, "odd N=47"),
        ((_t(2, 64), None, _t(64), 1e-6, _t(48, 72)), {}, "x has K=64 columns, w has 72"),
        ((_t(2, 12), None, _t(12), 1e-6, _t(48, 12)), {}, "K=12 must be a multiple of 8"),
        ((_t(3, 64), None, _t(64), 1e-6, _t(48, 64)), {"config": GemvConfig(4, 64, use_dot=False)},
         r"\(use_dot=0\) needs M == 1, got M=3"),
        ((_t(2, 64), None, _t(64), 1e-6, _t(48, 64)), {"config": GemvConfig(16, 64, split_k=2)},
         r"n16k64w4s3d1p2 splits K; the norm needs whole rows"),
    ],
)  # fmt: skip
def test_refusals_before_any_launch(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        norm_gemv(*args, **kwargs)


def test_cpu_tensors_need_the_interpreter():
    from sglang_ext.kernels import norm_gemv as mod

    if not mod._COMPILED:
        pytest.skip("this process runs Triton's interpreter")
    with pytest.raises(ValueError, match="norm_gemv: needs CUDA tensors"):
        norm_gemv(_t(2, 64), None, _t(64), 1e-6, _t(48, 64))


def test_worth_fusing_takes_the_measured_sides():
    """H200, call 33: 30B batch-1 launches (4 weight rows a program) paid, 235B ones (2) not."""
    from sglang_ext.kernels.norm_gemv import worth_fusing

    qkv30, gu30 = GemvConfig.parse("n4k2048w4s2d0"), GemvConfig.parse("n4k2048w4s2d0")
    qkv235, gu235 = GemvConfig.parse("n2k4096w4s2d0"), GemvConfig.parse("n2k4096w4s2d0")
    assert worth_fusing(qkv30, swiglu=False) and worth_fusing(swiglu_config(gu30), swiglu=True)
    assert not worth_fusing(qkv235, swiglu=False)
    assert not worth_fusing(swiglu_config(gu235), swiglu=True)  # 1 output = 2 rows


@pytest.mark.parametrize(
    ("table", "swiglu", "want"),
    [
        (None, False, None),  # the table keeps cuBLAS
        ("n4k2048w4s2d0", False, "n4k2048w4s2d0"),  # 30B qkv at one token
        ("n4k2048w4s2d0", True, "n2k2048w4s2d0"),  # 30B gate/up: 2 outputs = 4 rows
        ("n2k4096w4s2d0", False, None),  # 235B qkv: 2 rows
        ("n2k4096w4s2d0", True, None),  # 235B gate/up: 1 output = 2 rows
        ("n4k2048w4s2d0p2", False, None),  # a K split: the norm needs whole rows
    ],
)
def test_fused_launch_from_the_table(monkeypatch, table, swiglu, want):
    from sglang_ext.kernels import norm_gemv as mod

    monkeypatch.setattr(mod, "launch_for", lambda x, w: table and GemvConfig.parse(table))
    got = mod.fused_launch(_t(1, 64), _t(48, 64), swiglu=swiglu)
    assert (got and got.name) == want
