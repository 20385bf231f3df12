"""Qwen3's per-head q/k RMSNorm followed by rotary embedding, in place, in one Triton launch.

sglang's Qwen3 attention runs ``q_norm`` and ``k_norm`` (each an RMSNorm over ``head_dim``
channels of every head) and then rotates q and k by the cos/sin cache: three launches, and
for more than one token two copies, because ``q.reshape(-1, head_dim)`` of a slice of the
fused qkv buffer cannot be a view. Here one program per token normalises and rotates every
q head and then every k head, in float32 registers, reading each element once and writing it
once, straight into the strided q/k views of the qkv buffer (v is not touched).

Covers what Qwen3 uses: full rotary (``rotary_dim == head_dim``), neox pairs (``i, i + D/2``).

Given the layer's KV cache (``k_cache`` / ``v_cache``, [slots, H_kv, D]) and the tokens' slots
(``cache_loc``), the same program also stores the rotated key and the value of its token in
row ``cache_loc[t]``: sglang's ``set_kv_buffer`` (two ``index_put`` launches per layer) in
this launch.

The plain-torch reference is ``qk_norm_rope_ref``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl
from .qk_norm_rope_ref import qk_norm_rope_ref
from .rope import _token_cos_sin, launch_shape
from .rope_ref import heads_view

__all__ = ["qk_norm_rope", "supports"]


@triton.jit
def norm_rotate(x1, x2, w1, w2, cos, sin, eps, n):
    """RMSNorm of each row over its two halves ``x1``, ``x2`` (``n`` channels in all, float32)
    by the weight halves, then the neox rotation by ``cos``/``sin``: the two new halves."""
    rstd = 1.0 / tl.sqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / n + eps)
    y1 = x1 * rstd[:, None] * w1
    y2 = x2 * rstd[:, None] * w2
    return y1 * cos - y2 * sin, y2 * cos + y1 * sin


@triton.jit
def _norm_rotate_heads(
    base,
    w_ptr,
    n_heads,
    s_h,
    s_d,
    half,
    eps,
    cos,
    sin,
    dst,
    sd_h,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
    STORE: tl.constexpr,
):
    """Normalise and rotate ``n_heads`` heads at ``base`` in place; with ``STORE`` also write
    them to ``dst`` (a contiguous-head row: head stride ``sd_h``, channel stride 1)."""
    i = tl.arange(0, BLOCK_R)
    imask = i < half
    w1 = tl.load(w_ptr + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    w2 = tl.load(w_ptr + half + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    for h0 in range(0, n_heads, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)
        m = (h < n_heads)[:, None] & imask[None, :]
        p1 = base + h[:, None] * s_h + i[None, :] * s_d
        p2 = p1 + half * s_d
        x1 = tl.load(p1, mask=m, other=0.0).to(tl.float32)
        x2 = tl.load(p2, mask=m, other=0.0).to(tl.float32)
        o1, o2 = norm_rotate(x1, x2, w1, w2, cos, sin, eps, 2 * half)
        o1 = o1.to(base.dtype.element_ty)
        o2 = o2.to(base.dtype.element_ty)
        tl.store(p1, o1, mask=m)
        tl.store(p2, o2, mask=m)
        if STORE:
            c1 = dst + h[:, None] * sd_h + i[None, :]
            tl.store(c1, o1, mask=m)
            tl.store(c1 + half, o2, mask=m)


@triton.jit
def _copy_heads(
    src, s_h, s_d, dst, sd_h, n_heads, head_dim, BLOCK_H: tl.constexpr, BLOCK_D: tl.constexpr
):
    d = tl.arange(0, BLOCK_D)
    for h0 in range(0, n_heads, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)
        m = (h < n_heads)[:, None] & (d < head_dim)[None, :]
        x = tl.load(src + h[:, None] * s_h + d[None, :] * s_d, mask=m)
        tl.store(dst + h[:, None] * sd_h + d[None, :], x, mask=m)


@triton.jit
def _qk_norm_rope_kernel(
    pos_ptr,
    q_ptr,
    k_ptr,
    qw_ptr,
    kw_ptr,
    cache_ptr,
    n_q,
    n_k,
    half,
    sq_t,
    sq_h,
    sq_d,
    sk_t,
    sk_h,
    sk_d,
    s_cache,
    eps,
    v_ptr,
    sv_t,
    sv_h,
    sv_d,
    loc_ptr,
    kc_ptr,
    vc_ptr,
    sc_t,
    sc_h,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
    STORE_KV: tl.constexpr,
    PDL: tl.constexpr,
):
    if PDL:
        pdl.wait_then_release()
    t, _, _, cos, sin = _token_cos_sin(pos_ptr, cache_ptr, s_cache, half, BLOCK_R)
    _norm_rotate_heads(
        q_ptr + t * sq_t, qw_ptr, n_q, sq_h, sq_d, half, eps, cos, sin, q_ptr, 0,
        BLOCK_H, BLOCK_R, False,
    )  # fmt: skip
    if STORE_KV:
        slot = tl.load(loc_ptr + t).to(tl.int64)
        _norm_rotate_heads(
            k_ptr + t * sk_t, kw_ptr, n_k, sk_h, sk_d, half, eps, cos, sin,
            kc_ptr + slot * sc_t, sc_h, BLOCK_H, BLOCK_R, True,
        )  # fmt: skip
        _copy_heads(
            v_ptr + t * sv_t, sv_h, sv_d, vc_ptr + slot * sc_t, sc_h, n_k, 2 * half,
            BLOCK_H, 2 * BLOCK_R,
        )  # fmt: skip
    else:
        _norm_rotate_heads(
            k_ptr + t * sk_t, kw_ptr, n_k, sk_h, sk_d, half, eps, cos, sin, k_ptr, 0,
            BLOCK_H, BLOCK_R, False,
        )  # fmt: skip


def supports(head_dim: int, cos_sin_cache: torch.Tensor, is_neox: bool) -> bool:
    """The kernel's cases: neox pairs over the whole (even) head."""
    return bool(is_neox) and head_dim % 2 == 0 and cos_sin_cache.shape[-1] == head_dim


def qk_norm_rope(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    eps: float,
    head_dim: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
    *,
    value: torch.Tensor | None = None,
    k_cache: torch.Tensor | None = None,
    v_cache: torch.Tensor | None = None,
    cache_loc: torch.Tensor | None = None,
) -> None:
    """RMSNorm every head of ``query`` / ``key`` ([T, H * D] with any row stride, or
    [T, H, D]) by ``q_weight`` / ``k_weight`` ([D]), then rotate them, in place.

    With ``value`` (like ``key``), ``k_cache`` / ``v_cache`` ([slots, H_kv, D], contiguous
    heads, same dtype) and ``cache_loc`` ([T] slot ids), token t's rotated key and its value
    are also written to row ``cache_loc[t]`` of the caches."""
    pos = positions.reshape(-1)
    n_tok = pos.numel()
    if not supports(head_dim, cos_sin_cache, is_neox):
        raise ValueError(
            f"qk_norm_rope: needs neox rotary over the whole head (rotary_dim == head_dim "
            f"== {head_dim}, is_neox=True); got rotary_dim {cos_sin_cache.shape[-1]}, "
            f"is_neox={is_neox}: use qk_norm_rope_ref"
        )
    kv = (value, k_cache, v_cache, cache_loc)
    store = value is not None
    if store != all(x is not None for x in kv):
        raise ValueError("qk_norm_rope: pass value, k_cache, v_cache and cache_loc together")
    try:
        q3 = heads_view(query, n_tok, head_dim)
        k3 = heads_view(key, n_tok, head_dim)
        v3 = heads_view(value, n_tok, head_dim) if store else k3
    except RuntimeError:  # no [T, H, D] view shares storage: the reference copies back
        qk_norm_rope_ref(positions, query, key, q_weight, k_weight, eps, head_dim,
                         cos_sin_cache, value=value, k_cache=k_cache, v_cache=v_cache,
                         cache_loc=cache_loc)  # fmt: skip
        return
    if store:
        _check_cache(k3, v3, k_cache, v_cache, cache_loc, n_tok)
    if n_tok == 0:
        return
    if cos_sin_cache.stride(-1) != 1:
        cos_sin_cache = cos_sin_cache.contiguous()
    half = head_dim // 2
    block_r, block_h, warps = launch_shape(half, max(q3.shape[1], k3.shape[1]))
    kc, vc, loc = (k_cache, v_cache, cache_loc) if store else (k3, k3, pos)
    _qk_norm_rope_kernel[(n_tok,)](
        pos, q3, k3, q_weight, k_weight, cos_sin_cache, q3.shape[1], k3.shape[1], half,
        *q3.stride(), *k3.stride(), cos_sin_cache.stride(0), float(eps),
        v3, *v3.stride(), loc, kc, vc, kc.stride(0), kc.stride(1),
        BLOCK_H=block_h, BLOCK_R=block_r, STORE_KV=store, num_warps=warps,
        **pdl.launch_kwargs(q3),
    )  # fmt: skip


def _check_cache(k3, v3, k_cache, v_cache, cache_loc, n_tok: int) -> None:
    if v3.shape != k3.shape:
        raise ValueError(
            f"qk_norm_rope: value heads {tuple(v3.shape)} != key heads {tuple(k3.shape)}"
        )
    for name, c in (("k_cache", k_cache), ("v_cache", v_cache)):
        if c.dim() != 3 or c.shape[1:] != k3.shape[1:] or c.stride(-1) != 1:
            raise ValueError(
                f"qk_norm_rope: {name} must be [slots, {k3.shape[1]}, {k3.shape[2]}] with "
                f"contiguous channels; got shape {tuple(c.shape)} stride {c.stride()}"
            )
        if c.dtype != k3.dtype:
            raise ValueError(f"qk_norm_rope: {name} is {c.dtype}, the key is {k3.dtype}")
    if k_cache.stride() != v_cache.stride():
        raise ValueError("qk_norm_rope: k_cache and v_cache must have the same strides")
    if cache_loc.numel() != n_tok:
        raise ValueError(f"qk_norm_rope: {cache_loc.numel()} cache slots for {n_tok} tokens")
