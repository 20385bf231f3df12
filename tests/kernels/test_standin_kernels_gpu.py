"""The stand-in's Triton kernels on a CUDA GPU: bf16/fp16/fp32 vs float64, poisoned outputs,
larger shapes (hidden 2048, 4096 tokens, head_dim 256, 512 experts), and CUDA-graph capture
(static buffers, new inputs and NaN-filled outputs before every replay), as sglang's decode
graphs use them.  Cases and tolerances: ``_standin_cases``.
"""

import pytest
import torch
from _standin_cases import TOL, cases, gated64, rms64, rope64, rope_cache

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
GPU_CASES = {
    **cases((torch.float16, torch.float32), full=False),
    **cases((torch.bfloat16,), full=True),
}


@pytest.mark.parametrize("case", list(GPU_CASES))
def test_kernel_case_on_gpu(case):
    GPU_CASES[case]("cuda")
    torch.cuda.synchronize()


def _close(got, want, dtype, what):
    got = got.double().cpu()
    assert not torch.isnan(got).any(), f"{what}: NaN left (element not written)"
    torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("t", [1, 32])
def test_all_ops_capture_and_replay_in_one_cuda_graph(dtype, t):
    from sglang_ext.kernels.activation import gated_act
    from sglang_ext.kernels.norm import fused_add_rmsnorm, rmsnorm
    from sglang_ext.kernels.rope import apply_rope_inplace
    from sglang_ext.kernels.topk import topk_softmax

    dev, hid, hd, hq, hk, inter, e, k = "cuda", 2048, 128, 32, 4, 768, 128, 8
    qkv_w = (hq + 2 * hk) * hd
    x, r, xa = (torch.empty(t, hid, dtype=dtype, device=dev) for _ in range(3))
    w = torch.empty(hid, dtype=dtype, device=dev)
    wq = torch.empty(hd, dtype=dtype, device=dev)
    qkv = torch.empty(t, qkv_w, dtype=dtype, device=dev)
    pos = torch.zeros(t, dtype=torch.int64, device=dev)
    cache = rope_cache(4096, hd, 1e6).to(dev)
    h = torch.empty(t, 2 * inter, dtype=dtype, device=dev)
    logits = torch.empty(t, e, device=dev)
    y = torch.empty(t, hid, dtype=dtype, device=dev)
    o = torch.empty(t, inter, dtype=dtype, device=dev)
    tw = torch.empty(t, k, device=dev)
    ti, tei = (torch.empty(t, k, dtype=torch.int32, device=dev) for _ in range(2))
    qn = torch.empty(t * hq, hd, dtype=dtype, device=dev)

    def step():
        rmsnorm(x, w, 1e-6, out=y)
        fused_add_rmsnorm(xa, r, w, 1e-6)
        q, kk, _ = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
        rmsnorm(q.reshape(-1, hd), wq, 1e-6, out=qn)
        apply_rope_inplace(pos, q, kk, hd, cache, True)
        gated_act(h, o, "silu")
        topk_softmax(tw, ti, tei, logits)

    def fill(seed):
        g = torch.Generator().manual_seed(seed)
        vals = {}
        for name, tns in [("x", x), ("r", r), ("xa", xa), ("qkv", qkv), ("h", h)]:
            vals[name] = torch.randn(tns.shape, generator=g).to(dtype)
            tns.copy_(vals[name])
        for name, tns in [("w", w), ("wq", wq)]:
            vals[name] = (torch.rand(tns.shape, generator=g) + 0.5).to(dtype)
            tns.copy_(vals[name])
        vals["logits"] = torch.randn(t, e, generator=g)
        logits.copy_(vals["logits"])
        vals["pos"] = torch.randint(0, 4096, (t,), generator=g)
        pos.copy_(vals["pos"])
        for out in (y, o, tw, qn):
            out.fill_(float("nan"))
        ti.fill_(-7)
        tei.fill_(-7)
        return vals

    fill(0)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()  # compile and warm up outside the graph
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for seed in (1, 2):
        v = fill(seed)
        graph.replay()
        torch.cuda.synchronize()
        _close(y, rms64(v["x"], v["w"], 1e-6, False), dtype, "rmsnorm")
        s64 = v["xa"].double() + v["r"].double()
        _close(r, s64, dtype, "fused_add residual")
        _close(xa, rms64(s64, v["w"], 1e-6, False), dtype, "fused_add out")
        q0 = v["qkv"][:, : hq * hd]
        _close(qn, rms64(q0.reshape(-1, hd), v["wq"], 1e-6, False), dtype, "q norm")
        got = qkv.cpu()
        want_q = rope64(q0.reshape(t, hq, hd), v["pos"], cache, True)
        _close(got[:, : hq * hd].reshape(t, hq, hd), want_q, dtype, "rope q")
        k0 = v["qkv"][:, hq * hd : (hq + hk) * hd].reshape(t, hk, hd)
        _close(got[:, hq * hd : (hq + hk) * hd].reshape(t, hk, hd), rope64(k0, v["pos"], cache, True),
               dtype, "rope k")  # fmt: skip
        assert torch.equal(got[:, (hq + hk) * hd :], v["qkv"][:, (hq + hk) * hd :]), "v touched"
        _close(o, gated64(v["h"], "silu"), dtype, "silu_and_mul")
        want_w, want_i = torch.topk(torch.softmax(v["logits"].double(), -1), k, -1)
        assert torch.equal(ti.cpu().long(), want_i), "topk ids"
        _close(tw, want_w, torch.float32, "topk weights")
