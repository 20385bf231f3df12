"""What sglang's Qwen3-MoE attention does between ``qkv_proj`` and attention: the per-head
q/k RMSNorm (``_apply_qk_norm``) then the rotary embedding (``rotary_emb``).

Patch 0017 calls :func:`qk_norm_rope` there. On CUDA, for the plain rotary embedding Qwen3
uses (neox pairs over the whole head), it is one Triton kernel in place on the q/k slices of
the qkv buffer (:mod:`sglang_ext.kernels.qk_norm_rope`): three launches and, for more than
one token, two copies fewer per layer. Anything else, and every CPU run, takes sglang's own
two calls, unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["qk_norm_rope", "fusable"]

_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def fusable(attn: Any, q: torch.Tensor) -> bool:
    """Whether the fused kernel computes exactly what ``attn``'s two calls would."""
    rope = attn.rotary_emb
    if not q.is_cuda or q.dtype not in _DTYPES:
        return False
    if type(rope).__name__ != "RotaryEmbedding":  # scaled / multimodal variants: not here
        return False
    if type(attn.q_norm).__name__ != "RMSNorm" or type(attn.k_norm).__name__ != "RMSNorm":
        return False
    from sglang_ext.kernels.qk_norm_rope import supports

    return (
        rope.head_size == attn.head_dim
        and rope.cos_sin_cache.device == q.device
        and attn.q_norm.variance_epsilon == attn.k_norm.variance_epsilon
        and supports(attn.head_dim, rope.cos_sin_cache, rope.is_neox_style)
    )


def qk_norm_rope(
    attn: Any, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``attn._apply_qk_norm`` then ``attn.rotary_emb``; returns (q, k) as sglang's would."""
    if not fusable(attn, q):
        q, k = attn._apply_qk_norm(q, k)
        return attn.rotary_emb(positions, q, k)
    from sglang_ext.kernels.qk_norm_rope import qk_norm_rope as fused

    fused(
        positions,
        q,
        k,
        attn.q_norm.weight,
        attn.k_norm.weight,
        attn.q_norm.variance_epsilon,
        attn.head_dim,
        attn.rotary_emb.cos_sin_cache,
        attn.rotary_emb.is_neox_style,
    )
    return q, k
