"""Cases for the stand-in's Triton kernels (norm, rope, q/k norm + rope, activation, topk) vs float64,
and for the decode step's bookkeeping kernels (``decode_inputs``) vs sglang's own integer ops.

Each case builds its inputs on ``device`` in ``dtype``, fills every output with NaN (or
garbage ids) first, runs the kernel and raises AssertionError on any mismatch with a float64
reference written here from the op's definition.  The CPU interpreter worker and the GPU
tests run the same cases.  Tolerances: float32 1e-5 (float32 math, rounding of a few
reductions); float16 2e-3 (one rounding to 11 bits, 4.9e-4 relative, of values up to ~4);
bfloat16 1.6e-2 (one rounding to 8 bits, 3.9e-3 relative, plus rsqrt/exp of rounded inputs).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch

TOL = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=2e-3, atol=2e-3),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2),
}


def _gen(*key: object) -> torch.Generator:
    return torch.Generator().manual_seed(hash(key) % (2**31))


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    got = got.detach().cpu().double()
    assert not torch.isnan(got).any(), f"{what}: NaN left in the output (element not written?)"
    torch.testing.assert_close(got, want, **TOL[dtype], msg=lambda m: f"{what}: {m}")


# ---- float64 references, from the definitions -------------------------------------------


def rms64(x: torch.Tensor, w: torch.Tensor, eps: float, gemma: bool) -> torch.Tensor:
    x, w = x.double().cpu(), w.double().cpu()
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * ((1.0 + w) if gemma else w)


def gated64(x: torch.Tensor, act: str) -> torch.Tensor:
    x = x.double().cpu()
    d = x.shape[-1] // 2
    a, b = x[..., :d], x[..., d:]
    if act == "silu":
        g = a / (1.0 + torch.exp(-a))
    elif act == "gelu":
        g = 0.5 * a * (1.0 + torch.erf(a / math.sqrt(2.0)))
    else:
        g = 0.5 * a * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (a + 0.044715 * a**3)))
    return g * b


def rope64(x: torch.Tensor, pos: torch.Tensor, cache: torch.Tensor, neox: bool) -> torch.Tensor:
    """x: [T, H, D]; rotate the first rotary_dim channels by the cached cos/sin of pos."""
    x, cache = x.double().cpu(), cache.double().cpu()
    rot = cache.shape[-1]
    cs = cache[pos.cpu().long()]  # [T, rot]
    cos, sin = cs[:, None, : rot // 2], cs[:, None, rot // 2 :]
    i1 = torch.arange(rot // 2) if neox else torch.arange(0, rot, 2)
    i2 = i1 + rot // 2 if neox else i1 + 1
    y = x.clone()
    y[..., i1] = x[..., i1] * cos - x[..., i2] * sin
    y[..., i2] = x[..., i2] * cos + x[..., i1] * sin
    return y


def rope_cache(max_pos: int, rot: int, base: float = 10000.0) -> torch.Tensor:
    inv = 1.0 / base ** (torch.arange(0, rot, 2, dtype=torch.float64) / rot)
    f = torch.arange(max_pos, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([f.cos(), f.sin()], -1).float()  # [max_pos, rot] float32


# ---- cases ---------------------------------------------------------------------------------


def rmsnorm_case(dev, dtype, t: int, d: int, strided: bool, gemma: bool, residual: bool):
    from sglang_ext.kernels.norm import fused_add_rmsnorm, rmsnorm

    g = _gen("rms", t, d, strided, gemma, residual)
    pad = 5 if strided else 0
    buf = torch.randn(t, d + 2 * pad, generator=g).to(dtype).to(dev)
    x = buf[:, pad : pad + d]  # rows of a wider buffer when strided
    w = (torch.rand(d, generator=g) + 0.5).to(dtype).to(dev)
    if not residual:
        x_before = x.clone()
        out = torch.full((t, d), float("nan"), dtype=dtype, device=dev)
        assert rmsnorm(x, w, 1e-6, out=out, gemma=gemma) is out, "must return out"
        _close(out, rms64(x, w, 1e-6, gemma), dtype, "rmsnorm out")
        assert torch.equal(x, x_before), "rmsnorm changed its input"
        _close(rmsnorm(x, w, 1e-6, gemma=gemma), rms64(x, w, 1e-6, gemma), dtype, "rmsnorm new")
        return
    rbuf = torch.randn(t, d + 2 * pad, generator=g).to(dtype).to(dev)
    r = rbuf[:, pad : pad + d]
    s = x.double().cpu() + r.double().cpu()
    buf_before, rbuf_before = buf.clone(), rbuf.clone()
    assert fused_add_rmsnorm(x, r, w, 1e-5, gemma=gemma) is None
    _close(r, s, dtype, "residual <- x + residual")
    _close(x, rms64(s, w, 1e-5, gemma), dtype, "x <- rmsnorm(x + residual)")
    for b, b0 in ((buf, buf_before), (rbuf, rbuf_before)):
        assert torch.equal(b[:, :pad], b0[:, :pad]) and torch.equal(
            b[:, pad + d :], b0[:, pad + d :]
        ), "fused_add_rmsnorm wrote outside its views"


def qk_norm_case(dev, dtype, t: int, head_dim: int):
    # Qwen3MoeAttention._apply_qk_norm: q (a slice of qkv) reshaped to rows of head_dim
    from sglang_ext.kernels.norm import rmsnorm

    hq, hk = 4, 2
    g = _gen("qk", t, head_dim)
    qkv = torch.randn(t, (hq + 2 * hk) * head_dim, generator=g).to(dtype).to(dev)
    q = qkv[:, : hq * head_dim]
    w = (torch.rand(head_dim, generator=g) + 0.5).to(dtype).to(dev)
    rows = q.reshape(-1, head_dim)
    y = rmsnorm(rows, w, 1e-6)
    _close(y, rms64(rows, w, 1e-6, False), dtype, "q norm by head")
    q3 = q.unflatten(-1, (hq, head_dim))  # a strided 3-D view (no 2-D view of it exists)
    out = torch.full(q3.shape, float("nan"), dtype=dtype, device=dev)
    rmsnorm(q3, w, 1e-6, out=out)
    _close(out, rms64(q3, w, 1e-6, False), dtype, "q norm on a [T, H, D] view")


def gated_case(dev, dtype, t: int, d: int, act: str, strided: bool):
    from sglang_ext.kernels.activation import gated_act

    g = _gen("act", t, d, act, strided)
    buf = (torch.randn(t, 2 * d + (6 if strided else 0), generator=g) * 3).to(dtype).to(dev)
    x = buf[:, 3 : 3 + 2 * d] if strided else buf
    out = torch.full((t, d), float("nan"), dtype=dtype, device=dev)
    assert gated_act(x, out, act) is out
    _close(out, gated64(x, act), dtype, f"{act}_and_mul")


def rope_case(dev, dtype, t: int, head_dim: int, rot: int, neox: bool, three_d: bool):
    from sglang_ext.kernels.rope import apply_rope_inplace

    hq, hk, max_pos = 4, 2, 512
    g = _gen("rope", t, head_dim, rot, neox, three_d)
    qkv = torch.randn(t, (hq + 2 * hk) * head_dim, generator=g).to(dtype).to(dev)
    q, k, v = qkv.split([hq * head_dim, hk * head_dim, hk * head_dim], dim=-1)
    if three_d:
        q, k = q.unflatten(-1, (hq, head_dim)), k.unflatten(-1, (hk, head_dim))
    pos = torch.randint(0, max_pos, (t,), generator=g).to(dev)
    cache = rope_cache(max_pos, rot).to(dev)
    q0 = q.reshape(t, hq, head_dim).clone()
    k0 = k.reshape(t, hk, head_dim).clone()
    v0 = v.clone()
    assert apply_rope_inplace(pos, q, k, head_dim, cache, neox) is None
    _close(q.reshape(t, hq, head_dim), rope64(q0, pos, cache, neox), dtype, "query")
    _close(k.reshape(t, hk, head_dim), rope64(k0, pos, cache, neox), dtype, "key")
    assert torch.equal(v, v0), "rope touched the value slice of qkv"


def qk_norm_rope_case(dev, dtype, t: int, head_dim: int, three_d: bool):
    """Qwen3's q/k head norm then neox rope, fused, on the q/k slices of a qkv buffer."""
    from sglang_ext.kernels.qk_norm_rope import qk_norm_rope

    hq, hk, max_pos, eps = 4, 2, 512, 1e-6
    g = _gen("qknormrope", t, head_dim, three_d)
    qkv = (torch.randn(t, (hq + 2 * hk) * head_dim, generator=g) * 3).to(dtype).to(dev)
    q, k, v = qkv.split([hq * head_dim, hk * head_dim, hk * head_dim], dim=-1)
    if three_d:
        q, k = q.unflatten(-1, (hq, head_dim)), k.unflatten(-1, (hk, head_dim))
    qw = (torch.rand(head_dim, generator=g) + 0.5).to(dtype).to(dev)
    kw = (torch.rand(head_dim, generator=g) + 0.5).to(dtype).to(dev)
    pos = torch.randint(0, max_pos, (t,), generator=g).to(dev)
    cache = rope_cache(max_pos, head_dim).to(dev)
    q0 = q.reshape(t, hq, head_dim).clone()
    k0 = k.reshape(t, hk, head_dim).clone()
    v0 = v.clone()
    assert qk_norm_rope(pos, q, k, qw, kw, eps, head_dim, cache) is None
    want_q = rope64(rms64(q0, qw, eps, False), pos, cache, True)
    want_k = rope64(rms64(k0, kw, eps, False), pos, cache, True)
    _close(q.reshape(t, hq, head_dim), want_q, dtype, "query")
    _close(k.reshape(t, hk, head_dim), want_k, dtype, "key")
    assert torch.equal(v, v0), "qk_norm_rope touched the value slice of qkv"


def qk_norm_rope_kv_case(dev, dtype, t: int, head_dim: int):
    """The same, also storing the rotated key and the value in the KV cache rows
    ``cache_loc`` (sglang's ``set_kv_buffer``); every other cache row stays as it was."""
    from sglang_ext.kernels.qk_norm_rope import qk_norm_rope

    hq, hk, max_pos, eps, slots = 4, 2, 512, 1e-6, 3 * t + 5
    g = _gen("qknormrope-kv", t, head_dim)
    qkv = (torch.randn(t, (hq + 2 * hk) * head_dim, generator=g) * 3).to(dtype).to(dev)
    q, k, v = qkv.split([hq * head_dim, hk * head_dim, hk * head_dim], dim=-1)
    qw = (torch.rand(head_dim, generator=g) + 0.5).to(dtype).to(dev)
    kw = (torch.rand(head_dim, generator=g) + 0.5).to(dtype).to(dev)
    pos = torch.randint(0, max_pos, (t,), generator=g).to(dev)
    loc = torch.randperm(slots, generator=g)[:t].to(dev)
    cache = rope_cache(max_pos, head_dim).to(dev)
    k_cache = torch.randn(slots, hk, head_dim, generator=g).to(dtype).to(dev)
    v_cache = torch.randn(slots, hk, head_dim, generator=g).to(dtype).to(dev)
    kc0, vc0 = k_cache.clone(), v_cache.clone()
    q0 = q.reshape(t, hq, head_dim).clone()
    k0 = k.reshape(t, hk, head_dim).clone()
    v0 = v.reshape(t, hk, head_dim).clone()
    out = qk_norm_rope(
        pos, q, k, qw, kw, eps, head_dim, cache,
        value=v, k_cache=k_cache, v_cache=v_cache, cache_loc=loc,
    )  # fmt: skip
    assert out is None
    want_q = rope64(rms64(q0, qw, eps, False), pos, cache, True)
    want_k = rope64(rms64(k0, kw, eps, False), pos, cache, True)
    _close(q.reshape(t, hq, head_dim), want_q, dtype, "query")
    _close(k.reshape(t, hk, head_dim), want_k, dtype, "key")
    _close(k_cache[loc], want_k, dtype, "key cache rows")
    assert torch.equal(v_cache[loc], v0), "value cache rows != value"
    assert torch.equal(v.reshape(t, hk, head_dim), v0), "qk_norm_rope touched the value slice"
    rest = torch.ones(slots, dtype=torch.bool)
    rest[loc.cpu()] = False
    assert torch.equal(k_cache[rest.to(dev)], kc0[rest.to(dev)]), "other key cache rows changed"
    assert torch.equal(v_cache[rest.to(dev)], vc0[rest.to(dev)]), "other value cache rows changed"


ATTN_TOL = {  # logits of magnitude up to ~4 from q and k rounded to the dtype, then softmax
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.float16: dict(rtol=4e-3, atol=4e-3),
    torch.bfloat16: dict(rtol=3e-2, atol=3e-2),
}


def decode_attention_case(dev, dtype, lens: tuple[int, ...], hk: int, group: int, hd: int,
                          max_splits: int, block_n: int = 32, ref: bool = False):  # fmt: skip
    """One decode step of ``len(lens)`` sequences (``lens[b]`` tokens with the new one) vs
    float64 from the definitions: q/k RMSNorm per head, neox rotary at position len - 1, the
    new key/value written to cache row cache_loc[b] (its old content NaN, so reading it
    instead of the new values shows), softmax(q k^T / sqrt(D)) v over the sequence's slots in
    kv_indices.  Split buffers start NaN; the counters must be 0 again after each launch
    (two launches, the second on new inputs).  ``ref``: the plain-torch reference instead."""
    from sglang_ext.kernels.decode_attention import decode_attention, decode_attention_ref, tickets

    bsz, hq, eps = len(lens), hk * group, 1e-6
    g = _gen("decode-attn", lens, hk, group, hd, max_splits, block_n)
    slots = sum(lens) + 7
    perm = torch.randperm(slots, generator=g)
    indptr = torch.tensor([0, *itertools.accumulate(lens)], dtype=torch.int32)
    kv_indices = perm[: sum(lens)].to(torch.int32)
    loc = kv_indices[indptr[1:].long() - 1].long()  # each sequence's last slot: the new token
    pos = torch.tensor([n - 1 for n in lens])
    splits = torch.randint(1, max_splits + 1, (bsz,), generator=g).to(torch.int32)
    cache = rope_cache(max(lens) + 3, hd)
    k_cache = torch.randn(slots, hk, hd, generator=g).to(dtype)
    v_cache = torch.randn(slots, hk, hd, generator=g).to(dtype)
    k_cache[loc] = float("nan")
    v_cache[loc] = float("nan")
    qw = (torch.rand(hd, generator=g) + 0.5).to(dtype)
    kw = (torch.rand(hd, generator=g) + 0.5).to(dtype)
    ticket = tickets(torch.device(dev), bsz * hk)
    for step in range(2):
        qkv = (torch.randn(bsz, (hq + 2 * hk) * hd, generator=g) * 3).to(dtype)
        q, k, v = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
        want_k = rope64(rms64(k.reshape(bsz, hk, hd), kw, eps, False), pos, cache, True)
        want_q = rope64(rms64(q.reshape(bsz, hq, hd), qw, eps, False), pos, cache, True)
        keys, vals = k_cache.double().clone(), v_cache.double().clone()
        keys[loc], vals[loc] = want_k, v.reshape(bsz, hk, hd).double()
        want = torch.empty(bsz, hq, hd, dtype=torch.float64)
        for b in range(bsz):
            sl = kv_indices[indptr[b] : indptr[b + 1]].long()
            kk = keys[sl].repeat_interleave(group, 1)
            vv = vals[sl].repeat_interleave(group, 1)
            p = torch.softmax(torch.einsum("hd,nhd->hn", want_q[b], kk) / math.sqrt(hd), -1)
            want[b] = torch.einsum("hn,nhd->hd", p, vv)
        kc0, vc0 = k_cache.clone(), v_cache.clone()
        mid_o = torch.full((bsz + 2, hq, max_splits, hd), float("nan"))
        mid_lse = torch.full((bsz + 2, hq, max_splits), float("nan"))
        to = lambda x: x.to(dev)  # noqa: E731
        kc, vc = to(k_cache), to(v_cache)
        args = (to(pos), to(qkv)[:, : hq * hd], to(qkv)[:, hq * hd : (hq + hk) * hd],
                to(qkv)[:, (hq + hk) * hd :], to(qw), to(kw), eps, to(cache), kc, vc, to(loc),
                to(indptr), to(kv_indices))  # fmt: skip
        if ref:
            o = decode_attention_ref(*args, hd**-0.5)
        else:
            o = decode_attention(*args, to(splits), to(mid_o), to(mid_lse), hd**-0.5,
                                 ticket=ticket, block_n=block_n)  # fmt: skip
        tol = ATTN_TOL[dtype]
        got = o.detach().cpu().double().reshape(bsz, hq, hd)
        assert not torch.isnan(got).any(), f"step {step}: NaN in the output"
        torch.testing.assert_close(got, want, **tol, msg=lambda m, s=step: f"step {s} output: {m}")
        _close(kc.cpu()[loc], want_k, dtype, f"step {step} key cache rows")
        assert torch.equal(vc.cpu()[loc], v.reshape(bsz, hk, hd)), "value cache rows != value"
        rest = torch.ones(slots, dtype=torch.bool)
        rest[loc] = False
        assert torch.equal(kc.cpu()[rest], kc0[rest]), "other key cache rows changed"
        assert torch.equal(vc.cpu()[rest], vc0[rest]), "other value cache rows changed"
        assert int(ticket[: bsz * hk].count_nonzero()) == 0, "counters not reset to 0"
        k_cache, v_cache = kc.cpu(), vc.cpu()
        k_cache[loc] = float("nan")  # the next step writes them again
        v_cache[loc] = float("nan")


def topk_case(dev, dtype, m: int, e: int, k: int):
    from sglang_ext.kernels.topk import topk_softmax

    g = _gen("topk", m, e, k)
    logits = (torch.randn(m, e, generator=g) * 2).to(dtype).float().to(dev)
    w = torch.full((m, k), float("nan"), device=dev)
    ids = torch.full((m, k), -7, dtype=torch.int32, device=dev)
    tei = torch.full((m, k), -7, dtype=torch.int32, device=dev)
    assert topk_softmax(w, ids, tei, logits) is None
    p = torch.softmax(logits.double().cpu(), -1)
    want_w, want_ids = torch.topk(p, k, -1)
    assert torch.equal(ids.cpu().long(), want_ids), f"ids {ids.tolist()} != {want_ids.tolist()}"
    rows, cols = torch.meshgrid(torch.arange(m), torch.arange(k), indexing="ij")
    assert torch.equal(tei.cpu().long(), cols * m + rows), "token_expert_indices"
    _close(w, want_w, torch.float32, "topk weights")


def advance_decode_case(dev, bs: int, in_place: bool):
    """``prepare_for_decode``'s bookkeeping vs sglang's own ops (``decode_inputs_ref``) on
    copies of the same tensors: every table entry, the lengths, and which tensor holds them."""
    from sglang_ext.kernels.decode_inputs import advance_decode
    from sglang_ext.kernels.decode_inputs_ref import advance_decode_ref

    rows, ctx = max(2 * bs, 3), 600
    g = _gen("advance", bs, in_place)
    table = torch.randint(-(2**31), 2**31 - 1, (rows, ctx), generator=g, dtype=torch.int32)
    rpi = torch.randperm(rows, generator=g)[:bs]  # int64, distinct requests
    seq = torch.randint(1, ctx, (bs,), generator=g)  # int64 lengths before the step
    loc = torch.randint(0, 2**31 - 1, (bs,), generator=g)  # int64 KV slots
    want_table, want_seq0 = table.clone(), seq.clone()
    want = advance_decode_ref(want_table, rpi, want_seq0, loc, in_place=in_place)
    t, r, s, lo = (x.to(dev) for x in (table, rpi, seq, loc))
    got = advance_decode(t, r, s, lo, in_place=in_place)
    assert (got is s) == in_place, "in_place must return seq_lens itself, else a new tensor"
    assert got.dtype == seq.dtype and torch.equal(got.cpu(), want), "new lengths"
    if not in_place:
        assert torch.equal(s.cpu(), seq), "seq_lens changed although not in place"
    assert torch.equal(t.cpu(), want_table), "req_to_token differs from sglang's index_put"


def advance_decode_hand_case(dev):
    """Two requests in a 3 x 4 table, by hand: request 2 at length 1, request 0 at 3."""
    from sglang_ext.kernels.decode_inputs import advance_decode

    t = torch.full((3, 4), -1, dtype=torch.int32, device=dev)
    seq = torch.tensor([1, 3], device=dev)
    new = advance_decode(t, torch.tensor([2, 0], device=dev), seq,
                         torch.tensor([70, 2**31 - 2], device=dev), in_place=False)  # fmt: skip
    assert new.tolist() == [2, 4] and seq.tolist() == [1, 3]
    assert t.tolist() == [[-1, -1, -1, 2**31 - 2], [-1] * 4, [-1, 70, -1, -1]], t.tolist()


def graph_inputs_case(dev, raw_bs: int, bs: int):
    """``replay_prepare``'s padding and copies vs sglang's own ops on copies of the same
    buffers (sglang's dtypes: int64 ids, int32 pool rows and lengths, int64 slots and
    positions), garbage in every buffer first; rows past ``bs`` must stay untouched."""
    from sglang_ext.kernels.decode_inputs import copy_graph_inputs
    from sglang_ext.kernels.decode_inputs_ref import copy_graph_inputs_ref

    max_bs = 512
    g = _gen("graphinputs", raw_bs, bs)
    dtypes = (torch.int64, torch.int32, torch.int32, torch.int64, torch.int64)
    dst = tuple(torch.randint(-99, 99, (max_bs,), generator=g).to(d) for d in dtypes)
    src = (torch.randint(0, 151_000, (raw_bs,), generator=g),
           torch.randint(0, 4096, (raw_bs,), generator=g),
           torch.randint(1, 40_000, (raw_bs,), generator=g),
           torch.randint(0, 2**40, (raw_bs,), generator=g),
           torch.randint(0, 40_000, (raw_bs,), generator=g))  # fmt: skip
    want = tuple(d.clone() for d in dst)
    copy_graph_inputs_ref(want, src, bs)
    got = tuple(d.to(dev) for d in dst)
    copy_graph_inputs(got, tuple(x.to(dev) for x in src), bs)
    names = ("input_ids", "req_pool_indices", "seq_lens", "out_cache_loc", "positions")
    for name, gt, w, before in zip(names, got, want, dst, strict=True):
        assert gt.dtype == before.dtype, f"{name}: dtype changed"
        assert torch.equal(gt.cpu()[:bs], w[:bs]), f"{name}: rows < bs differ from sglang's"
        assert torch.equal(gt.cpu()[bs:], before[bs:]), f"{name}: rows >= bs were written"


def cases(dtypes: tuple[torch.dtype, ...], full: bool) -> dict[str, Callable]:
    """{case id: fn(device)}; ``full`` adds the larger shapes (for the GPU)."""
    out: dict[str, Callable] = {}
    toks = (1, 7, 33) + ((257,) if full else ())
    for dt in dtypes:
        n = str(dt).split(".")[-1]
        for t, d, strided, gemma, res in itertools.product(
            toks, (192, 2048), (False, True), (False,), (False, True)
        ):
            out[f"norm-{n}-t{t}-d{d}-s{int(strided)}-r{int(res)}"] = (
                lambda dev, a=(dt, t, d, strided, gemma, res): rmsnorm_case(dev, *a)
            )
        out[f"norm-{n}-gemma"] = lambda dev, dt=dt: rmsnorm_case(dev, dt, 7, 192, True, True, True)
        for t, hd in itertools.product(toks, (32, 64, 128) + ((256,) if full else ())):
            out[f"qknorm-{n}-t{t}-hd{hd}"] = lambda dev, a=(dt, t, hd): qk_norm_case(dev, *a)
        acts = [(t, d, "silu", s) for t, d, s in itertools.product(toks, (96, 1000), (False, True))]
        acts += [(7, 1000, "gelu", True), (7, 1000, "gelu_tanh", True)]
        if full:
            acts += [
                (t, d, a, True)
                for t, d, a in itertools.product(toks, (96, 1000), ("gelu", "gelu_tanh"))
            ]
        for t, d, act, strided in acts:
            out[f"act-{n}-{act}-t{t}-d{d}-s{int(strided)}"] = (
                lambda dev, a=(dt, t, d, act, strided): gated_case(dev, *a)
            )
        if full:
            out[f"act-{n}-silu-t4096-d768"] = lambda dev, dt=dt: gated_case(
                dev, dt, 4096, 768, "silu", True
            )
        hds = (32, 64, 128) + ((256,) if full else ())
        ropes = [
            (7, hd, r, nx, False)
            for hd, r, nx in itertools.product(hds, (False, True), (True, False))
        ]
        ropes += [(t, 64, False, True, False) for t in toks if t != 7]
        ropes += [(7, 64, False, nx, True) for nx in (True, False)]
        if full:
            ropes += [
                (t, hd, False, nx, tdim)
                for t, hd, nx, tdim in itertools.product(toks, hds, (True, False), (False, True))
            ]
        for t, hd, half_rot, neox, three_d in ropes:
            rot = hd // 2 if half_rot else hd
            out[f"rope-{n}-t{t}-hd{hd}-rot{rot}-neox{int(neox)}-3d{int(three_d)}"] = (
                lambda dev, a=(dt, t, hd, rot, neox, three_d): rope_case(dev, *a)
            )
        for t, hd, tdim in [(tk, 128, False) for tk in toks] + [(7, 64, True), (7, 32, False)]:
            out[f"qknormrope-{n}-t{t}-hd{hd}-3d{int(tdim)}"] = lambda dev, a=(dt, t, hd, tdim): (
                qk_norm_rope_case(dev, *a)
            )
        for t, hd in [(1, 128), (33, 128), (7, 64)] + ([(257, 128)] if full else []):
            out[f"qknormrope-{n}-kv-t{t}-hd{hd}"] = lambda dev, a=(dt, t, hd): qk_norm_rope_kv_case(
                dev, *a
            )
        attn = [
            ((529,), 4, 8, 128, 8, 128),
            ((1, 5, 33, 70, 130), 2, 4, 64, 4, 32),
            ((3, 64, 65), 1, 1, 32, 16, 16),
            ((40, 7), 3, 16, 128, 2, 64),
            ((97, 300), 2, 8, 64, 6, 32),  # a split count not a power of two
        ]
        if full:
            attn += [
                ((529,) * 32, 4, 8, 128, 4, 64),
                ((529,), 4, 16, 128, 8, 128),
                ((2000, 17, 1), 4, 8, 128, 16, 32),
            ]
        for lens, hk, grp, hd, sp, bn in attn:
            cid = f"decodeattn-{n}-b{len(lens)}-l{max(lens)}-kv{hk}-g{grp}-hd{hd}-s{sp}-n{bn}"
            out[cid] = lambda dev, a=(dt, lens, hk, grp, hd, sp, bn): decode_attention_case(dev, *a)
        lens, hk, grp, hd, sp, bn = attn[1]
        out[f"decodeattn-{n}-ref"] = lambda dev, a=(dt, lens, hk, grp, hd, sp, bn): (
            decode_attention_case(dev, *a, ref=True)
        )
    for bs, in_place in itertools.product((0, 1, 7, 300), (True, False)):
        out[f"decodeinputs-advance-b{bs}-inplace{int(in_place)}"] = lambda dev, a=(bs, in_place): (
            advance_decode_case(dev, *a)
        )
    out["decodeinputs-advance-by-hand"] = advance_decode_hand_case
    for raw_bs, bs in [(1, 1), (3, 4), (7, 8), (160, 160), (200, 256), (257, 320)]:
        out[f"decodeinputs-graph-raw{raw_bs}-bs{bs}"] = lambda dev, a=(raw_bs, bs): (
            graph_inputs_case(dev, *a)
        )
    for m, e, k in [(1, 1, 1), (1, 8, 2), (7, 60, 4), (33, 128, 8)] + (
        [(4096, 128, 8), (257, 512, 8)] if full else []
    ):
        out[f"topk-m{m}-e{e}-k{k}"] = lambda dev, a=(m, e, k): topk_case(dev, torch.float32, *a)
    return out


CPU_DTYPES = (torch.float32, torch.float16)  # bf16 under the interpreter is garbage
CPU_CASES = cases(CPU_DTYPES, full=False)
