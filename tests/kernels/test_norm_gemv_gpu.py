"""``norm_gemv`` on a CUDA GPU in bf16 at the Qwen3-30B-A3B shapes serving fuses (patch 0023):
qkv_proj [5120, 2048] plain and the expert's gate/up [1536, 2048] with SwiGLU, CUDA-core (M=1)
and tensor-core launches, with and without a residual, against float64 of the same bf16
inputs; eagerly and captured in a CUDA graph replayed on new inputs with NaN-poisoned outputs.
The new residual must be the float32 sum rounded once, bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from sglang_ext.kernels.gemv import GemvConfig
from sglang_ext.kernels.norm_gemv import norm_gemv, swiglu_config

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
K = 2048
CASES = [(1, "n4k2048w4s2d0"), (4, "n16k512w2s3d1"), (17, "n16k512w2s3d1"), (32, "n32k128w4s4d1")]


def _inputs(m, n, res, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)

    def r(*shape, scale=1.0):
        return (torch.randn(*shape, device="cuda", generator=g) * scale).to(torch.bfloat16)

    x, resid = r(m, K), (r(m, K) if res else None)
    return x, resid, (1 + r(K, scale=0.2)), r(n, K, scale=K**-0.5)


def _check(y, new_res, x, resid, nw, w, swiglu):
    s = x.double() + (0 if resid is None else resid.double())
    want = (s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6) * nw.double()) @ w.double().T
    if swiglu:
        gate, up = want.chunk(2, dim=-1)
        want = F.silu(gate) * up
    assert not torch.isnan(y).any()
    tol = 2e-2 * want.abs().max().item()  # bf16 operands and output (2^-8), sums of 2048
    torch.testing.assert_close(y.double(), want, rtol=2e-2, atol=tol)
    if resid is None:
        assert new_res is x
    else:
        assert torch.equal(new_res, (x.float() + resid.float()).to(torch.bfloat16))


@pytest.mark.parametrize("swiglu", [False, True], ids=["qkv", "gate_up_swiglu"])
@pytest.mark.parametrize("res", [True, False], ids=["res", "nores"])
@pytest.mark.parametrize("m, cfg", CASES, ids=[f"m{m}-{c}" for m, c in CASES])
def test_matches_float64(m, cfg, res, swiglu):
    n = 1536 if swiglu else 5120
    config = GemvConfig.parse(cfg)
    config = swiglu_config(config) if swiglu else config
    x, resid, nw, w = _inputs(m, n, res, seed=m)
    y, new_res = norm_gemv(x, resid, nw, 1e-6, w, swiglu=swiglu, config=config)
    _check(y, new_res, x, resid, nw, w, swiglu)


@pytest.mark.parametrize("m, cfg", [CASES[0], CASES[1]], ids=["m1", "m4"])
def test_captured_in_a_cuda_graph_and_replayed_on_new_inputs(m, cfg):
    config = swiglu_config(GemvConfig.parse(cfg))
    x, resid, nw, w = _inputs(m, 1536, True, seed=7)
    norm_gemv(x, resid, nw, 1e-6, w, swiglu=True, config=config)  # compile outside
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y, new_res = norm_gemv(x, resid, nw, 1e-6, w, swiglu=True, config=config)
    for i in range(3):
        nx, nr, _, _ = _inputs(m, 1536, True, seed=100 + i)
        x.copy_(nx)
        resid.copy_(nr)
        y.fill_(float("nan"))
        new_res.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        _check(y, new_res, x, resid, nw, w, True)
