"""The sgl_kernel stand-in on a CUDA device: bf16/fp16 numerics and CUDA-graph capture.

What the CPU tests cannot show: the ops keep their in-place/out semantics on CUDA tensors
(strided qkv views included) and run without host synchronisation, so sglang can capture
them in its decode CUDA graphs.  References are float64 on the CPU.  Tolerances: one
rounding of the result to bf16 (2^-9) or fp16 (2^-12) relative, plus the inputs' rounding:
rtol=atol=1e-2 (bf16), 2e-3 (fp16).
"""

import pytest
import torch
from _standin_align_check import check_alignment
from _standin_refs import rms_ref, rope_ref

import sglang_ext.compat.sgl_kernel as sk

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
TOL = {torch.bfloat16: dict(rtol=1e-2, atol=1e-2), torch.float16: dict(rtol=2e-3, atol=2e-3)}
DEV = "cuda"


@pytest.mark.parametrize("dtype", list(TOL))
def test_norms_and_swiglu_on_cuda(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(333, 2048, generator=g).to(dtype)
    r = torch.randn(333, 2048, generator=g).to(dtype)
    w = (torch.rand(2048, generator=g) + 0.5).to(dtype)
    xd, rd, wd = x.to(DEV), r.to(DEV), w.to(DEV)
    y = sk.rmsnorm(xd, wd, 1e-6)
    torch.testing.assert_close(y.cpu().double(), rms_ref(x, w, 1e-6, False), **TOL[dtype])
    sk.fused_add_rmsnorm(xd, rd, wd, 1e-6)
    s = x.double() + r.double()
    torch.testing.assert_close(rd.cpu().double(), s, **TOL[dtype])
    torch.testing.assert_close(xd.cpu().double(), rms_ref(s, w, 1e-6, False), **TOL[dtype])
    h = torch.randn(333, 2 * 768, generator=g).to(dtype)
    out = torch.empty(333, 768, dtype=dtype, device=DEV)
    sk.silu_and_mul(h.to(DEV), out)
    a, b = h[:, :768].double(), h[:, 768:].double()
    torch.testing.assert_close(out.cpu().double(), a / (1 + torch.exp(-a)) * b, **TOL[dtype])


@pytest.mark.parametrize("neox", [True, False])
def test_rope_on_cuda_qkv_views(neox):
    t, hq, hk, d = 257, 8, 2, 128
    g = torch.Generator().manual_seed(1)
    qkv = torch.randn(t, (hq + 2 * hk) * d, generator=g).to(torch.bfloat16)
    pos = torch.randint(0, 4096, (t,), generator=g)
    inv = 1.0 / 1e6 ** (torch.arange(0, d, 2, dtype=torch.float32) / d)
    f = torch.arange(4096, dtype=torch.float32)[:, None] * inv[None, :]
    cache = torch.cat([f.cos(), f.sin()], -1)
    qkv_d = qkv.to(DEV)
    q, k, v = qkv_d.split([hq * d, hk * d, hk * d], dim=-1)
    sk.apply_rope_with_cos_sin_cache_inplace(pos.to(DEV), q, k, d, cache.to(DEV), neox)
    got = qkv_d.cpu().double()
    want_q = rope_ref(qkv[:, : hq * d].double().view(t, hq, d), pos, d, 1e6, neox)
    want_k = rope_ref(qkv[:, hq * d : (hq + hk) * d].double().view(t, hk, d), pos, d, 1e6, neox)
    torch.testing.assert_close(got[:, : hq * d].view(t, hq, d), want_q, **TOL[torch.bfloat16])
    torch.testing.assert_close(
        got[:, hq * d : (hq + hk) * d].view(t, hk, d), want_k, **TOL[torch.bfloat16]
    )
    assert torch.equal(got[:, (hq + hk) * d :], qkv[:, (hq + hk) * d :].double()), "v touched"


@pytest.mark.parametrize("impl", ["triton", "torch"])
@pytest.mark.parametrize("m,k,e,bs", [(1, 1, 1, 64), (4096, 1, 1, 64), (777, 8, 128, 64)])
def test_routing_ops_capture_in_cuda_graph(m, k, e, bs, impl, monkeypatch):
    # static buffers as in sglang's graph runner; capture, change the inputs, replay
    monkeypatch.setenv(sk.moe.ALIGN_IMPL_ENV, impl)
    logits = torch.randn(m, e, device=DEV)
    w = torch.empty(m, k, device=DEV)
    ids = torch.empty(m, k, dtype=torch.int32, device=DEV)
    tei = torch.empty(m, k, dtype=torch.int32, device=DEV)
    cap = m * k + e * (bs - 1)
    sorted_ids = torch.empty(cap, dtype=torch.int32, device=DEV)
    expert_ids = torch.empty((cap + bs - 1) // bs, dtype=torch.int32, device=DEV)
    n_post = torch.empty(1, dtype=torch.int32, device=DEV)

    def step():
        sk.topk_softmax(w, ids, tei, logits)
        sk.moe_align_block_size(ids, e, bs, sorted_ids, expert_ids, n_post)

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()  # warm-up outside the graph
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for seed in (2, 3):
        logits.copy_(torch.randn(m, e, generator=torch.Generator().manual_seed(seed)))
        graph.replay()
        torch.cuda.synchronize()
        want = torch.topk(torch.softmax(logits.double(), -1), k, -1)
        torch.testing.assert_close(w.double(), want.values, rtol=1e-6, atol=1e-7)
        check_alignment(ids.cpu(), e, bs, sorted_ids.cpu(), expert_ids.cpu(), n_post.cpu())
