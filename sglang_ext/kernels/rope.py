"""Rotary embedding with a cos/sin cache, in place on q and k, in one Triton launch
(sgl_kernel's ``apply_rope_with_cos_sin_cache_inplace``; also the head sizes sglang sends to
vLLM's ``rotary_embedding``).

A program per token rotates every head of q and then of k: it reads the token's cos/sin row
once, each rotated q/k element once, and writes it once, in float32.  q and k may be strided
views (slices of a fused qkv buffer, [T, H * D] or [T, H, D]); any head size, any even
``rotary_dim <= head_size`` (the channels past it are not touched), neox (``i, i + r/2``) or
GPT-J (``2i, 2i + 1``) pairs.  The plain-torch reference is ``rope_ref``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .rope_ref import heads_view, rope_ref

__all__ = ["apply_rope_inplace"]

_TILE = 4096  # rotated pairs per head block (BLOCK_H * BLOCK_R)


@triton.jit
def _rotate_heads(base, n_heads, s_h, s_d, d1, d2, imask, cos, sin, BLOCK_H: tl.constexpr):
    for h0 in range(0, n_heads, BLOCK_H):
        h = h0 + tl.arange(0, BLOCK_H)
        m = (h < n_heads)[:, None] & imask[None, :]
        p1 = base + h[:, None] * s_h + d1[None, :] * s_d
        p2 = base + h[:, None] * s_h + d2[None, :] * s_d
        x1 = tl.load(p1, mask=m, other=0.0).to(tl.float32)
        x2 = tl.load(p2, mask=m, other=0.0).to(tl.float32)
        tl.store(p1, (x1 * cos - x2 * sin).to(base.dtype.element_ty), mask=m)
        tl.store(p2, (x2 * cos + x1 * sin).to(base.dtype.element_ty), mask=m)


@triton.jit
def _token_cos_sin(pos_ptr, cache_ptr, s_cache, half, BLOCK_R: tl.constexpr):
    """This program's token, the pair index, its mask and the token's cos/sin rows [1, R]."""
    t = tl.program_id(0).to(tl.int64)
    pos = tl.load(pos_ptr + t).to(tl.int64)
    i = tl.arange(0, BLOCK_R)
    imask = i < half
    cos = tl.load(cache_ptr + pos * s_cache + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(cache_ptr + pos * s_cache + half + i, mask=imask, other=0.0).to(tl.float32)
    return t, i, imask, cos, sin[None, :]


def launch_shape(half: int, heads: int) -> tuple[int, int, int]:
    """(BLOCK_R, BLOCK_H, num_warps) of a program per token over ``heads`` heads of ``half``
    rotated pairs."""
    block_r = triton.next_power_of_2(half)
    block_h = max(1, min(triton.next_power_of_2(heads), _TILE // block_r))
    return block_r, block_h, max(1, min(8, block_h * block_r // 256))


@triton.jit
def _rope_kernel(
    pos_ptr,
    q_ptr,
    k_ptr,
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
    NEOX: tl.constexpr,
    HAS_K: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
):
    t, i, imask, cos, sin = _token_cos_sin(pos_ptr, cache_ptr, s_cache, half, BLOCK_R)
    if NEOX:
        d1 = i
        d2 = i + half
    else:
        d1 = 2 * i
        d2 = 2 * i + 1
    _rotate_heads(q_ptr + t * sq_t, n_q, sq_h, sq_d, d1, d2, imask, cos, sin, BLOCK_H)
    if HAS_K:
        _rotate_heads(k_ptr + t * sk_t, n_k, sk_h, sk_d, d1, d2, imask, cos, sin, BLOCK_H)


def apply_rope_inplace(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor | None,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> None:
    """Rotate ``query`` and ``key`` ([T, H * head_size] or [T, H, head_size]) in place."""
    pos = positions.reshape(-1)
    n_tok = pos.numel()
    rot = cos_sin_cache.shape[-1]
    try:
        q3 = heads_view(query, n_tok, head_size)
        k3 = heads_view(key, n_tok, head_size) if key is not None else q3
    except RuntimeError:  # no [T, H, D] view shares storage: the reference copies back
        rope_ref(positions, query, key, head_size, cos_sin_cache, is_neox)
        return
    if n_tok == 0:
        return
    if cos_sin_cache.stride(-1) != 1:
        cos_sin_cache = cos_sin_cache.contiguous()
    half = rot // 2
    block_r, block_h, warps = launch_shape(half, max(q3.shape[1], k3.shape[1]))
    _rope_kernel[(n_tok,)](
        pos, q3, k3, cos_sin_cache, q3.shape[1], k3.shape[1], half,
        *q3.stride(), *k3.stride(), cos_sin_cache.stride(0),
        NEOX=bool(is_neox), HAS_K=key is not None, BLOCK_H=block_h, BLOCK_R=block_r,
        num_warps=warps,
    )  # fmt: skip
