"""Qwen3's per-head q/k RMSNorm followed by rotary embedding, in place, in one Triton launch.

sglang's Qwen3 attention runs ``q_norm`` and ``k_norm`` (each an RMSNorm over ``head_dim``
channels of every head) and then rotates q and k by the cos/sin cache: three launches, and
for more than one token two copies, because ``q.reshape(-1, head_dim)`` of a slice of the
fused qkv buffer cannot be a view. Here one program per token normalises and rotates every
q head and then every k head, in float32 registers, reading each element once and writing it
once, straight into the strided q/k views of the qkv buffer (v is not touched).

Covers what Qwen3 uses: full rotary (``rotary_dim == head_dim``), neox pairs (``i, i + D/2``).
The plain-torch reference is ``qk_norm_rope_ref``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .qk_norm_rope_ref import qk_norm_rope_ref
from .rope import _token_cos_sin, launch_shape
from .rope_ref import heads_view

__all__ = ["qk_norm_rope", "supports"]


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
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
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
        rstd = 1.0 / tl.sqrt((tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / (2 * half) + eps)
        y1 = x1 * rstd[:, None] * w1
        y2 = x2 * rstd[:, None] * w2
        tl.store(p1, (y1 * cos - y2 * sin).to(base.dtype.element_ty), mask=m)
        tl.store(p2, (y2 * cos + y1 * sin).to(base.dtype.element_ty), mask=m)


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
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    t, _, _, cos, sin = _token_cos_sin(pos_ptr, cache_ptr, s_cache, half, BLOCK_R)
    _norm_rotate_heads(
        q_ptr + t * sq_t, qw_ptr, n_q, sq_h, sq_d, half, eps, cos, sin, BLOCK_H, BLOCK_R
    )
    _norm_rotate_heads(
        k_ptr + t * sk_t, kw_ptr, n_k, sk_h, sk_d, half, eps, cos, sin, BLOCK_H, BLOCK_R
    )


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
) -> None:
    """RMSNorm every head of ``query`` / ``key`` ([T, H * D] with any row stride, or
    [T, H, D]) by ``q_weight`` / ``k_weight`` ([D]), then rotate them, in place."""
    pos = positions.reshape(-1)
    n_tok = pos.numel()
    if not supports(head_dim, cos_sin_cache, is_neox):
        raise ValueError(
            f"qk_norm_rope: needs neox rotary over the whole head (rotary_dim == head_dim "
            f"== {head_dim}, is_neox=True); got rotary_dim {cos_sin_cache.shape[-1]}, "
            f"is_neox={is_neox}: use qk_norm_rope_ref"
        )
    try:
        q3 = heads_view(query, n_tok, head_dim)
        k3 = heads_view(key, n_tok, head_dim)
    except RuntimeError:  # no [T, H, D] view shares storage: the reference copies back
        qk_norm_rope_ref(positions, query, key, q_weight, k_weight, eps, head_dim, cos_sin_cache)
        return
    if n_tok == 0:
        return
    if cos_sin_cache.stride(-1) != 1:
        cos_sin_cache = cos_sin_cache.contiguous()
    half = head_dim // 2
    block_r, block_h, warps = launch_shape(half, max(q3.shape[1], k3.shape[1]))
    _qk_norm_rope_kernel[(n_tok,)](
        pos, q3, k3, q_weight, k_weight, cos_sin_cache, q3.shape[1], k3.shape[1], half,
        *q3.stride(), *k3.stride(), cos_sin_cache.stride(0), float(eps),
        BLOCK_H=block_h, BLOCK_R=block_r, num_warps=warps,
    )  # fmt: skip
