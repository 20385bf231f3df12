"""The stand-in's flashinfer provider on a CUDA GPU: each flashinfer-backed op against float64,
bf16/fp16, with NaN-poisoned outputs and inside one CUDA graph, and the calls flashinfer cannot
take (fp32, unaligned rows, 3-D norms, head size 32) served correctly by the Triton kernels.

The Triton launchers (or flashinfer's wrappers, for the fallback cases) are replaced by a
function that fails, so each test shows which provider computed the result.

    SGLANG_EXT_REQUIRE_FLASHINFER=1 python -m pytest -m gpu tests/compat/test_standin_flashinfer_gpu.py

fails instead of skipping when flashinfer does not import.  Cases and float64 references:
``tests/kernels/_standin_cases`` (tolerances there: bf16 1.6e-2, fp16 2e-3, one rounding of
the result plus the rounded inputs).
"""

import os

import pytest
import torch

import sglang_ext.compat.sgl_kernel as sk
from sglang_ext.compat import flashinfer_jit, flashinfer_ops
from sglang_ext.compat.sgl_kernel import _impl
from tests.kernels._standin_cases import TOL, gated64, rms64, rope64, rope_cache

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
DEV = "cuda"
DTYPES = [torch.bfloat16, torch.float16]


@pytest.fixture(autouse=True)
def _need_flashinfer(monkeypatch):
    if not flashinfer_jit.available():
        why = flashinfer_jit._load()[1]
        if os.environ.get("SGLANG_EXT_REQUIRE_FLASHINFER") == "1":
            pytest.fail(f"SGLANG_EXT_REQUIRE_FLASHINFER=1 but {why}")
        pytest.skip(why)
    monkeypatch.setenv(_impl.IMPL_ENV, "flashinfer")


def _forbid(monkeypatch, module, names, who):
    for n in names:
        monkeypatch.setattr(module, n, lambda *a, n=n, **k: pytest.fail(f"{who}.{n} ran"))


@pytest.fixture()
def no_triton(monkeypatch):
    from sglang_ext.kernels import activation, norm, rope

    _forbid(monkeypatch, norm, ["rmsnorm", "fused_add_rmsnorm"], "triton norm")
    _forbid(monkeypatch, activation, ["gated_act"], "triton activation")
    _forbid(monkeypatch, rope, ["apply_rope_inplace"], "triton rope")


@pytest.fixture()
def no_flashinfer(monkeypatch):
    _forbid(monkeypatch, flashinfer_ops,
            ["rmsnorm", "fused_add_rmsnorm", "gated_act", "apply_rope_inplace"], "flashinfer")  # fmt: skip


def _close(got, want, dtype, what):
    got = got.detach().double().cpu()
    assert not torch.isnan(got).any(), f"{what}: NaN left (element not written)"
    torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m: f"{what}: {m}")


def _rnd(*shape, dtype, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype).to(DEV)


def test_auto_picks_triton_on_cuda_even_with_flashinfer(monkeypatch):
    monkeypatch.delenv(_impl.IMPL_ENV)
    assert _impl.provider(torch.empty(1, device=DEV)) == "triton"  # measured faster (H200)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t,d", [(1, 2048), (33, 4096), (257, 128), (7, 192)])
@pytest.mark.parametrize("gemma", [False, True])
def test_norms_through_flashinfer(dtype, t, d, gemma, no_triton):
    x, r = _rnd(t, d, dtype=dtype, seed=1), _rnd(t, d, dtype=dtype, seed=2)
    w = (torch.rand(d, generator=torch.Generator().manual_seed(3)) + 0.5).to(dtype).to(DEV)
    norm = sk.gemma_rmsnorm if gemma else sk.rmsnorm
    out = torch.full_like(x, float("nan"))
    assert norm(x, w, 1e-6, out=out) is out
    _close(out, rms64(x, w, 1e-6, gemma), dtype, "rmsnorm")
    _close(norm(x, w, 1e-6), rms64(x, w, 1e-6, gemma), dtype, "rmsnorm, new out")
    s = x.double().cpu() + r.double().cpu()
    (sk.gemma_fused_add_rmsnorm if gemma else sk.fused_add_rmsnorm)(x, r, w, 1e-6)
    _close(r, s, dtype, "residual <- x + residual")
    _close(x, rms64(s, w, 1e-6, gemma), dtype, "x <- rmsnorm(x + residual)")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("t,d", [(1, 768), (33, 1536), (4096, 768), (5, 8)])
def test_gated_activations_through_flashinfer(dtype, act, t, d, no_triton):
    x = _rnd(t, 2 * d, dtype=dtype, seed=4) * 3
    out = torch.full((t, d), float("nan"), dtype=dtype, device=DEV)
    assert getattr(sk, f"{act}_and_mul")(x, out) is out
    _close(out, gated64(x, act), dtype, f"{act}_and_mul")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hd,half_rot", [(64, False), (128, False), (128, True), (256, False)])
@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize("t", [1, 33])
def test_rope_on_qkv_views_through_flashinfer(dtype, hd, half_rot, neox, t, no_triton):
    hq, hk, max_pos = 8, 2, 4096
    qkv = _rnd(t, (hq + 2 * hk) * hd, dtype=dtype, seed=5)
    q, k, v = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
    pos = torch.randint(0, max_pos, (t,), generator=torch.Generator().manual_seed(6)).to(DEV)
    cache = rope_cache(max_pos, hd // 2 if half_rot else hd, 1e6).to(DEV)
    q0, k0, v0 = q.reshape(t, hq, hd).clone(), k.reshape(t, hk, hd).clone(), v.clone()
    sk.apply_rope_with_cos_sin_cache_inplace(pos, q, k, hd, cache, neox)
    _close(q.reshape(t, hq, hd), rope64(q0, pos, cache, neox), dtype, "query")
    _close(k.reshape(t, hk, hd), rope64(k0, pos, cache, neox), dtype, "key")
    assert torch.equal(v, v0), "rope touched the value slice"


def test_calls_flashinfer_cannot_take_run_on_triton(no_flashinfer):
    bf = torch.bfloat16
    x32 = _rnd(9, 256, dtype=torch.float32, seed=7)
    w32 = torch.rand(256, device=DEV) + 0.5
    _close(sk.rmsnorm(x32, w32, 1e-6), rms64(x32, w32, 1e-6, False), torch.float32, "fp32")
    buf = _rnd(9, 256 + 6, dtype=bf, seed=8)
    x, w = buf[:, 3:259], (torch.rand(256, device=DEV) + 0.5).to(bf)
    _close(sk.rmsnorm(x, w, 1e-6), rms64(x, w, 1e-6, False), bf, "unaligned rows")
    q3 = _rnd(9, 6 * 128, dtype=bf, seed=9)[:, : 4 * 128].unflatten(-1, (4, 128))
    wq = (torch.rand(128, device=DEV) + 0.5).to(bf)
    _close(sk.rmsnorm(q3, wq, 1e-6), rms64(q3, wq, 1e-6, False), bf, "3-D q norm")
    h = _rnd(9, 2 * 100, dtype=bf, seed=10)
    _close(sk.silu_and_mul(h), gated64(h, "silu"), bf, "d=100 activation")
    t, hq, hk, hd = 9, 4, 2, 32
    qkv = _rnd(t, (hq + 2 * hk) * hd, dtype=bf, seed=11)
    q, k, _ = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
    q0, k0 = q.reshape(t, hq, hd).clone(), k.reshape(t, hk, hd).clone()
    pos, cache = torch.arange(t, device=DEV), rope_cache(64, hd).to(DEV)
    sk.apply_rope_with_cos_sin_cache_inplace(pos, q, k, hd, cache, True)
    _close(q.reshape(t, hq, hd), rope64(q0, pos, cache, True), bf, "head 32 query")
    _close(k.reshape(t, hk, hd), rope64(k0, pos, cache, True), bf, "head 32 key")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t", [1, 32])
def test_flashinfer_ops_capture_and_replay_in_one_cuda_graph(dtype, t, no_triton):
    hid, hd, hq, hk, inter = 2048, 128, 32, 4, 768
    x, r, xa, y = (torch.empty(t, hid, dtype=dtype, device=DEV) for _ in range(4))
    w = torch.empty(hid, dtype=dtype, device=DEV)
    wq = torch.empty(hd, dtype=dtype, device=DEV)
    qkv = torch.empty(t, (hq + 2 * hk) * hd, dtype=dtype, device=DEV)
    qn = torch.empty(t * hq, hd, dtype=dtype, device=DEV)
    pos = torch.zeros(t, dtype=torch.int64, device=DEV)
    cache = rope_cache(4096, hd, 1e6).to(DEV)
    h = torch.empty(t, 2 * inter, dtype=dtype, device=DEV)
    o = torch.empty(t, inter, dtype=dtype, device=DEV)

    def step():
        sk.rmsnorm(x, w, 1e-6, out=y)
        sk.fused_add_rmsnorm(xa, r, w, 1e-6)
        q, kk, _ = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
        sk.rmsnorm(q.reshape(-1, hd), wq, 1e-6, out=qn)  # sglang's q norm: rows of head_dim
        sk.apply_rope_with_cos_sin_cache_inplace(pos, q, kk, hd, cache, True)
        sk.silu_and_mul(h, o)

    def fill(seed):
        g, vals = torch.Generator().manual_seed(seed), {}
        for name, tns in [("x", x), ("r", r), ("xa", xa), ("qkv", qkv), ("h", h)]:
            vals[name] = torch.randn(tns.shape, generator=g).to(dtype)
            tns.copy_(vals[name])
        for name, tns in [("w", w), ("wq", wq)]:
            vals[name] = (torch.rand(tns.shape, generator=g) + 0.5).to(dtype)
            tns.copy_(vals[name])
        vals["pos"] = torch.randint(0, 4096, (t,), generator=g)
        pos.copy_(vals["pos"])
        for out in (y, o, qn):
            out.fill_(float("nan"))
        return vals

    fill(0)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        step()  # JIT-load flashinfer's modules outside the graph
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
        _close(got[:, : hq * hd].reshape(t, hq, hd),
               rope64(q0.reshape(t, hq, hd), v["pos"], cache, True), dtype, "rope q")  # fmt: skip
        k0 = v["qkv"][:, hq * hd : (hq + hk) * hd].reshape(t, hk, hd)
        _close(got[:, hq * hd : (hq + hk) * hd].reshape(t, hk, hd),
               rope64(k0, v["pos"], cache, True), dtype, "rope k")  # fmt: skip
        assert torch.equal(got[:, (hq + hk) * hd :], v["qkv"][:, (hq + hk) * hd :]), "v touched"
        _close(o, gated64(v["h"], "silu"), dtype, "silu_and_mul")


def test_bench_times_the_same_work_through_flashinfer():
    # the bench's flashinfer cases leave what its torch cases leave, from the same inputs
    from sglang_ext.compat.bench import StandinBenchConfig, _cases

    cfg = StandinBenchConfig(tokens=[3], hidden=[2048], impls=["torch", "flashinfer"])
    seen = set()
    for case in _cases(cfg):
        if "flashinfer" not in case.impls:
            continue
        outs = {}
        for impl in ("torch", "flashinfer"):
            torch.manual_seed(0)
            a = case.make()
            case.impls[impl](a)
            outs[impl] = {k: v.clone() for k, v in a.items() if isinstance(v, torch.Tensor)}
        for k, want in outs["torch"].items():
            _close(outs["flashinfer"][k], want.double().cpu(), torch.bfloat16, f"{case.op}.{k}")
        seen.add(case.op)
    assert seen == {"rmsnorm", "fused_add_rmsnorm", "qk_norm", "rope", "silu_and_mul"}, seen
