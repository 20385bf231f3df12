"""Programmatic dependent launch (``kernels.pdl``) on a CUDA GPU of compute capability 9.0+.

A chain of our PDL kernels, each reading what the one before wrote (gemv -> rmsnorm -> gemv
-> silu_and_mul -> gemv -> fused_add_rmsnorm -> norm_gemv with a residual and SwiGLU ->
gemv), eagerly and captured in a CUDA graph that is
replayed on new inputs with every intermediate poisoned (NaN) before each replay.  Each stage
is checked against a float64 computation from the bf16 buffer it actually read: a kernel that
ran ahead of its producer (a missing or misplaced ``griddepcontrol.wait``) would have read
NaN or the previous replay's values and fail here.
"""

import pytest
import torch

from sglang_ext.kernels import pdl
from sglang_ext.kernels.activation import gated_act
from sglang_ext.kernels.gemv import gemv
from sglang_ext.kernels.norm import fused_add_rmsnorm, rmsnorm
from sglang_ext.kernels.norm_gemv import norm_gemv

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(
        torch.cuda.is_available() and torch.cuda.get_device_capability(0)[0] < 9,
        reason="PDL needs compute capability 9.0+",
    ),
]
D, H, INTER, EPS = 2048, 4096, 1536, 1e-6


@pytest.fixture(autouse=True)
def _pdl_on(monkeypatch):
    """These tests run the kernels with PDL (SGLANG_EXT_PDL=1; off by default)."""
    from sglang_ext.serving.config import rank_config

    monkeypatch.delenv("SGLANG_EXT_CONFIG", raising=False)
    monkeypatch.setenv("SGLANG_EXT_PDL", "1")
    rank_config.cache_clear()
    yield
    rank_config.cache_clear()


def test_pdl_is_on_here():
    """On Hopper with a Triton that has the gdc ops, SGLANG_EXT_PDL=1 launches with PDL."""
    import triton

    assert pdl.supported(0), f"Triton {triton.__version__} lacks tl.extra.cuda.gdc_wait"
    assert pdl.launch_kwargs(torch.empty(0, device="cuda")) == {"PDL": True, "launch_pdl": True}


class Chain:
    def __init__(self, m: int, seed: int = 0):
        g = torch.Generator(device="cuda").manual_seed(seed)

        def rnd(*shape, scale=1.0):
            t = torch.randn(*shape, device="cuda", generator=g) * scale
            return t.to(torch.bfloat16)

        self.w1, self.w2 = rnd(H, D, scale=D**-0.5), rnd(2 * INTER, H, scale=H**-0.5)
        self.w3, self.nw = rnd(D, INTER, scale=INTER**-0.5), rnd(H).abs() + 0.5
        self.nw2, self.nw4 = rnd(D).abs() + 0.5, rnd(D).abs() + 0.5
        self.w4, self.w5 = rnd(2 * INTER, D, scale=D**-0.5), rnd(D, INTER, scale=INTER**-0.5)
        self.x, self.res = rnd(m, D), rnd(m, D)
        empty = lambda *s: torch.empty(*s, device="cuda", dtype=torch.bfloat16)  # noqa: E731
        self.y1, self.n1, self.y2 = empty(m, H), empty(m, H), empty(m, 2 * INTER)
        self.a, self.y3 = empty(m, INTER), empty(m, D)

    def run(self):
        gemv(self.x, self.w1, out=self.y1)
        rmsnorm(self.y1, self.nw, EPS, out=self.n1)
        gemv(self.n1, self.w2, out=self.y2)
        gated_act(self.y2, self.a, "silu")
        gemv(self.a, self.w3, out=self.y3)
        fused_add_rmsnorm(self.y3, self.res, self.nw2, EPS)  # y3 <- norm(res + y3), in place
        # y4 = silu(gate) * up of norm(y3 + res) @ w4^T, r4 = y3 + res (new tensors)
        self.y4, self.r4 = norm_gemv(self.y3, self.res, self.nw4, EPS, self.w4, swiglu=True)
        self.y5 = gemv(self.y4, self.w5)

    def poison(self):
        for t in (self.y1, self.n1, self.y2, self.a, self.y3, self.y4, self.r4, self.y5):
            t.fill_(float("nan"))

    def check(self, x, res_in):
        """Each stage against float64 of the bf16 input it read."""

        def close(got, want, what):
            assert not torch.isnan(got).any(), f"{what}: NaN (read before its producer wrote)"
            tol = 2e-2 * want.abs().max().item()
            torch.testing.assert_close(got.double(), want, rtol=2e-2, atol=tol, msg=what)

        def norm(v, w):
            return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + EPS) * w.double()

        close(self.y1, x.double() @ self.w1.double().T, "gemv 1")
        close(self.n1, norm(self.y1.double(), self.nw), "rmsnorm")
        close(self.y2, self.n1.double() @ self.w2.double().T, "gemv 2")
        gate, up = self.y2.double().chunk(2, dim=-1)
        close(self.a, torch.nn.functional.silu(gate) * up, "silu_and_mul")
        y3 = self.a.double() @ self.w3.double().T
        close(self.res, res_in.double() + y3, "fused_add_rmsnorm residual")
        close(self.y3, norm(self.res.double(), self.nw2), "fused_add_rmsnorm out")
        close(self.r4, self.y3.double() + self.res.double(), "norm_gemv residual")
        h = norm(self.r4.double(), self.nw4) @ self.w4.double().T
        gate, up = h.chunk(2, dim=-1)
        close(self.y4, torch.nn.functional.silu(gate) * up, "norm_gemv swiglu")
        close(self.y5, self.y4.double() @ self.w5.double().T, "gemv after norm_gemv")


@pytest.mark.parametrize("m", [1, 8])
def test_chain_matches_float64_eager_and_in_a_graph(m):
    c = Chain(m)
    res0 = c.res.clone()
    c.run()  # the outputs norm_gemv and the last gemv allocate, to poison
    c.res.copy_(res0)
    c.poison()
    c.run()
    c.check(c.x, res0)

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        c.run()  # warm-up on a side stream before capture
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        c.run()
    g = torch.Generator(device="cuda").manual_seed(100 + m)
    for _ in range(5):
        c.x.copy_(torch.randn(c.x.shape, device="cuda", generator=g).to(torch.bfloat16))
        c.res.copy_(torch.randn(c.res.shape, device="cuda", generator=g).to(torch.bfloat16))
        res_in = c.res.clone()
        c.poison()
        graph.replay()
        torch.cuda.synchronize()
        c.check(c.x, res_in)
