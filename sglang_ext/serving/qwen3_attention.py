"""What sglang's Qwen3-MoE attention does between ``qkv_proj`` and attention: the per-head
q/k RMSNorm (``_apply_qk_norm``), the rotary embedding (``rotary_emb``) and, inside the
attention backend, the KV-cache write (``set_kv_buffer``).

Patch 0017 calls :func:`qk_norm_rope` there. On CUDA, for the plain rotary embedding Qwen3
uses (neox pairs over the whole head), it is one Triton kernel in place on the q/k slices of
the qkv buffer (:mod:`sglang_ext.kernels.qk_norm_rope`): three launches and, for more than
one token, two copies fewer per layer. Patch 0018 hands it the value and the batch too: where
the layer's KV cache is sglang's plain bf16/fp16/fp32 ``MHATokenToKVPool`` and the backend is
the Triton one (the one checked against HF on the GPU, ``tests/gpu_e2e``), the same launch
writes the rotated key and the value to the cache rows ``out_cache_loc`` and the attention
call skips its own write: two ``index_put`` launches fewer per layer. Anything else (the
flashinfer backend too), and every CPU run, takes sglang's own calls, unchanged.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["qk_norm_rope", "fusable", "kv_cache_target"]

_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# Backends whose forward_extend / forward_decode write k and v only through
# set_kv_buffer(out_cache_loc) under save_kv_cache and otherwise read them from the cache,
# and whose served tokens were checked against HF with the fused write (tests/gpu_e2e).
# FlashInferAttnBackend meets the first condition, not yet the second.
_KV_BACKENDS = ("TritonAttnBackend",)
_CACHE_ATTR = "_sglang_ext_fusable"


def fusable(attn: Any, q: torch.Tensor) -> bool:
    """Whether the fused kernel computes exactly what ``attn``'s two calls would (worked out
    once per module, device and dtype)."""
    if torch.compiler.is_compiling():
        return _fusable(attn, q)
    key = (q.device, q.dtype)
    cached = attn.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached[0] == key:
        return cached[1]
    ok = _fusable(attn, q)
    attn.__dict__[_CACHE_ATTR] = (key, ok)
    return ok


def _fusable(attn: Any, q: torch.Tensor) -> bool:
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


def kv_cache_target(
    attn: Any, forward_batch: Any, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(k_cache, v_cache, out_cache_loc) of this layer when the fused kernel may write them in
    place of ``set_kv_buffer``; None where sglang's own write must run."""
    if forward_batch is None:
        return None
    pool = getattr(forward_batch, "token_to_kv_pool", None)
    radix = getattr(attn, "attn", None)
    loc = getattr(forward_batch, "out_cache_loc", None)
    if pool is None or radix is None or loc is None or loc.numel() != k.shape[0]:
        return None
    if type(pool).__name__ != "MHATokenToKVPool":
        return None
    if type(getattr(forward_batch, "attn_backend", None)).__name__ not in _KV_BACKENDS:
        return None
    if pool.dtype != k.dtype or pool.store_dtype != k.dtype:  # fp8 caches scale and cast
        return None
    if getattr(radix, "k_scale", None) is not None or getattr(radix, "v_scale", None) is not None:
        return None
    if getattr(radix, "is_cross_attention", False):
        return None
    return pool.get_key_buffer(radix.layer_id), pool.get_value_buffer(radix.layer_id), loc


def qk_norm_rope(
    attn: Any,
    positions: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor | None = None,
    forward_batch: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``attn._apply_qk_norm`` then ``attn.rotary_emb``; returns (q, k) as sglang's would and
    ``save_kv_cache``: False when k and v are already in the layer's KV cache."""
    if not fusable(attn, q):
        q, k = attn._apply_qk_norm(q, k)
        q, k = attn.rotary_emb(positions, q, k)
        return q, k, True
    from sglang_ext.kernels.qk_norm_rope import qk_norm_rope as fused

    target = kv_cache_target(attn, forward_batch, k) if v is not None else None
    kv = {}
    if target is not None:
        kv = dict(value=v, k_cache=target[0], v_cache=target[1], cache_loc=target[2])
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
        **kv,
    )
    return q, k, target is None
