"""The sgl_kernel stand-in's ops vs independent float64 references, on CPU.

Each reference is written here from the op's definition (not from the stand-in's code).
Tolerances: float32 inputs are compared at rtol=atol=1e-5 (the op computes in float32;
the only differences are float32 rounding of a few reductions); bfloat16 outputs at
rtol=1e-2, atol=1e-2 (one bf16 rounding of the result is 2^-9 relative, plus the inputs'
own bf16 rounding feeding a rsqrt/exp).
"""

import pytest
import torch
from _standin_align_check import check_alignment
from _standin_refs import rms_ref, rope_ref

import sglang_ext.compat.sgl_kernel as sk

TOL = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.bfloat16: dict(rtol=1e-2, atol=1e-2)}
DTYPES = [torch.float32, torch.bfloat16]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("t,d", [(1, 64), (33, 511)])
@pytest.mark.parametrize("gemma", [False, True])
def test_rmsnorm_matches_formula(dtype, t, d, gemma):
    g = torch.Generator().manual_seed(t * d)
    x = torch.randn(t, d, generator=g).to(dtype)
    w = (torch.rand(d, generator=g) + 0.5).to(dtype)
    op = sk.gemma_rmsnorm if gemma else sk.rmsnorm
    x_before = x.clone()
    y = op(x, w, 1e-6)
    assert y.dtype == dtype and y.shape == x.shape
    torch.testing.assert_close(y.double(), rms_ref(x, w, 1e-6, gemma), **TOL[dtype])
    assert torch.equal(x, x_before), "rmsnorm must not modify its input"
    out = torch.empty_like(x)
    assert op(x, w, 1e-6, out=out) is out, "rmsnorm(out=...) must return out"
    torch.testing.assert_close(out, y, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gemma", [False, True])
def test_fused_add_rmsnorm_is_in_place(dtype, gemma):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(33, 128, generator=g).to(dtype)
    r = torch.randn(33, 128, generator=g).to(dtype)
    w = (torch.rand(128, generator=g) + 0.5).to(dtype)
    s_ref = x.double() + r.double()
    op = sk.gemma_fused_add_rmsnorm if gemma else sk.fused_add_rmsnorm
    assert op(x, r, w, 1e-5) is None
    # residual <- input + residual; input <- norm(input + residual), both in place
    torch.testing.assert_close(r.double(), s_ref, **TOL[dtype])
    torch.testing.assert_close(x.double(), rms_ref(s_ref, w, 1e-5, gemma), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["silu_and_mul", "gelu_and_mul", "gelu_tanh_and_mul"])
@pytest.mark.parametrize("shape", [(1, 2 * 64), (33, 2 * 511), (2, 3, 2 * 16)])
def test_gated_activations(dtype, name, shape):
    g = torch.Generator().manual_seed(shape[-1])
    x = (torch.randn(*shape, generator=g) * 3).to(dtype)
    d = shape[-1] // 2
    a, b = x[..., :d].double(), x[..., d:].double()
    if name == "silu_and_mul":
        ref = a / (1.0 + torch.exp(-a)) * b
    elif name == "gelu_and_mul":
        ref = 0.5 * a * (1.0 + torch.erf(a / 2**0.5)) * b
    else:
        c = (2.0 / torch.pi) ** 0.5
        ref = 0.5 * a * (1.0 + torch.tanh(c * (a + 0.044715 * a**3))) * b
    op = getattr(sk, name)
    out = torch.full(shape[:-1] + (d,), float("nan"), dtype=dtype)
    assert op(x, out) is out, f"{name}(x, out) must write into and return out"
    torch.testing.assert_close(out.double(), ref, **TOL[dtype])
    torch.testing.assert_close(op(x), out, rtol=0, atol=0)


def test_gated_activation_rejects_bad_out():
    with pytest.raises(ValueError, match="out must have shape"):
        sk.silu_and_mul(torch.randn(4, 8), torch.empty(4, 8))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("neox", [True, False])
@pytest.mark.parametrize("head_size,rot", [(64, 64), (128, 64)])
def test_rope_in_place_on_fused_qkv_views(dtype, neox, head_size, rot):
    t, hq, hk, base, max_pos = 33, 4, 2, 10000.0, 4096
    g = torch.Generator().manual_seed(head_size + rot + neox)
    # a fused qkv buffer; q and k are strided views into it, as in sglang's attention
    qkv = torch.randn(t, (hq + 2 * hk) * head_size, generator=g).to(dtype)
    q, k, v = qkv.split([hq * head_size, hk * head_size, hk * head_size], dim=-1)
    q_in, k_in, v_in = q.clone(), k.clone(), v.clone()
    pos = torch.randint(0, max_pos, (t,), generator=g)
    inv = 1.0 / base ** (torch.arange(0, rot, 2, dtype=torch.float32) / rot)
    freqs = torch.arange(max_pos, dtype=torch.float32)[:, None] * inv[None, :]
    cache = torch.cat([freqs.cos(), freqs.sin()], dim=-1)  # [max_pos, rot] float32
    res = sk.apply_rope_with_cos_sin_cache_inplace(
        positions=pos, query=q, key=k, head_size=head_size, cos_sin_cache=cache, is_neox=neox
    )
    assert res is None
    for name, got, before, h in [("query", q, q_in, hq), ("key", k, k_in, hk)]:
        ref = rope_ref(before.double().view(t, h, head_size), pos, rot, base, neox)
        # float32 cache angles at positions up to 4096: ~4e-4 rad absolute, hence atol
        tol = dict(rtol=1e-3, atol=2e-3) if dtype == torch.float32 else TOL[dtype]
        torch.testing.assert_close(
            got.double().view(t, h, head_size), ref, **tol, msg=lambda m, n=name: f"{n}: {m}"
        )
    assert torch.equal(v, v_in), "rope must not touch the value slice of qkv"


def test_rope_requires_float32_cache():
    q = torch.randn(2, 64)
    with pytest.raises(ValueError, match="float32"):
        sk.apply_rope_with_cos_sin_cache_inplace(
            torch.zeros(2, dtype=torch.long), q, q.clone(), 64, torch.zeros(8, 64).half(), True
        )


@pytest.mark.parametrize("m,e,k", [(1, 8, 2), (33, 64, 8), (5, 1, 1)])
def test_topk_softmax_outputs_in_place(m, e, k):
    g = torch.Generator().manual_seed(m * e + k)
    logits = torch.randn(m, e, generator=g)
    w = torch.empty(m, k, dtype=torch.float32)
    ids = torch.empty(m, k, dtype=torch.int32)
    tei = torch.empty(m, k, dtype=torch.int32)
    assert sk.topk_softmax(w, ids, tei, logits) is None
    p = torch.exp(logits.double() - logits.double().max(-1, keepdim=True).values)
    p = p / p.sum(-1, keepdim=True)
    for row in range(m):
        want = sorted(range(e), key=lambda j: -p[row, j].item())[:k]
        assert ids[row].tolist() == want, f"row {row}: ids {ids[row].tolist()} != {want}"
        for j in range(k):
            assert tei[row, j].item() == j * m + row, f"token_expert_indices[{row},{j}]"
    torch.testing.assert_close(w.double(), p.gather(1, ids.long()), rtol=1e-6, atol=1e-7)


def _align_buffers(numel, e, bs):
    cap = numel + e * (bs - 1)
    sorted_ids = torch.full((cap,), -7, dtype=torch.int32)  # garbage the op must overwrite
    expert_ids = torch.full(((cap + bs - 1) // bs,), -7, dtype=torch.int32)
    n_post = torch.empty(1, dtype=torch.int32)
    return sorted_ids, expert_ids, n_post


@pytest.mark.parametrize(
    "m,k,e,bs", [(1, 1, 1, 16), (33, 2, 8, 16), (222, 8, 64, 64), (7, 4, 5, 4)]
)
def test_moe_align_block_size_invariants(m, k, e, bs):
    g = torch.Generator().manual_seed(m + e)
    topk_ids = torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(m)]).int()
    sorted_ids, expert_ids, n_post = _align_buffers(topk_ids.numel(), e, bs)
    cumsum = torch.empty(e + 1, dtype=torch.int32)
    sk.moe_align_block_size(
        topk_ids,
        e,
        bs,
        sorted_ids,
        expert_ids,
        n_post,
        torch.empty((e + 1) * e, dtype=torch.int32),
        cumsum,
    )
    check_alignment(topk_ids, e, bs, sorted_ids, expert_ids, n_post)
    assert cumsum[-1].item() == n_post.item() and cumsum[0].item() == 0


def test_moe_align_block_size_skips_masked_tokens():
    # sglang masks padded tokens' topk_ids with -1 (topk.py _mask_topk_ids_padded_region)
    topk_ids = torch.tensor([[0, 2], [1, 2], [-1, -1]], dtype=torch.int32)
    sorted_ids, expert_ids, n_post = _align_buffers(6, 3, 4)
    sk.moe_align_block_size(topk_ids, 3, 4, sorted_ids, expert_ids, n_post, None, None)
    check_alignment(topk_ids, 3, 4, sorted_ids, expert_ids, n_post)


def test_moe_align_block_size_rejects_small_buffer():
    with pytest.raises(ValueError, match="slots"):
        sk.moe_align_block_size(
            torch.zeros(4, 1, dtype=torch.int32),
            2,
            16,
            torch.empty(8, dtype=torch.int32),
            torch.empty(4, dtype=torch.int32),
            torch.empty(1, dtype=torch.int32),
        )


@pytest.mark.parametrize(
    "name,hint",
    [
        ("top_k_top_p_sampling_from_probs", "--sampling-backend pytorch"),
        ("min_p_sampling_from_probs", "--sampling-backend pytorch"),
        ("moe_fused_gate", "install sgl-kernel"),
        ("fp8_scaled_mm", "--quantization"),
        ("some_future_op", "install sgl-kernel"),
    ],
)
def test_missing_op_raises_with_name_and_hint(name, hint):
    op = getattr(sk, name)  # import-time access must work
    with pytest.raises(NotImplementedError) as ei:
        op(torch.zeros(1))
    msg = str(ei.value)
    assert f"sgl_kernel.{name} is not available" in msg and hint in msg, msg


def test_submodule_ops_raise_with_flag():
    with pytest.raises(
        NotImplementedError,
        match=r"flash_attn\.flash_attn_with_kvcache.*"
        r"--attention-backend triton",
    ):
        sk.flash_attn.flash_attn_with_kvcache()
    with pytest.raises(
        NotImplementedError,
        match=r"allreduce\.meta_size.*"
        r"--disable-custom-all-reduce",
    ):
        sk.allreduce.meta_size()


def test_private_names_are_absent():
    assert not hasattr(sk, "_not_there")
    assert not hasattr(sk, "__wrapped__")
    assert not hasattr(sk.allreduce, "__path__")
    assert sk.__sglang_ext_standin__ is True
    assert sk.__version__.startswith("0.1.7+")
    assert set(sk.IMPLEMENTED) <= set(dir(sk))


def test_standin_path_and_need_standin(monkeypatch):
    import sys
    from pathlib import Path

    from sglang_ext.compat import need_standin, standin_path

    assert (Path(standin_path()) / "sgl_kernel" / "__init__.py").is_file()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert need_standin() is False, "no CUDA: the stand-in is never needed"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    saved = {n: m for n, m in sys.modules.items() if n.split(".")[0] == "sgl_kernel"}
    for n in saved:
        del sys.modules[n]
    try:
        assert need_standin() is True, "CUDA and no importable sgl_kernel: stand-in needed"
        # the stand-in itself being importable does not count as the real package
        monkeypatch.syspath_prepend(standin_path())
        assert need_standin() is True
        assert sys.modules["sgl_kernel"].__sglang_ext_standin__ is True
    finally:
        for n in [n for n in sys.modules if n.split(".")[0] == "sgl_kernel"]:
            del sys.modules[n]
        sys.modules.update(saved)
