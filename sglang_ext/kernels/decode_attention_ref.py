"""Plain-torch reference of ``decode_attention``: sglang's three steps composed, the q/k norm
and rotary (``qk_norm_rope_ref``, on copies), the KV-cache write (``set_kv_buffer``) and the
decode attention of each sequence over its cache slots, in float32 with q and k rounded to
the cache's dtype as the unfused path stores them.  The split buffers and counters the kernel
uses are not needed here (a split changes only the order of float32 sums)."""

from __future__ import annotations

import torch

from .qk_norm_rope_ref import qk_norm_rope_ref

__all__ = ["decode_attention_ref"]


def decode_attention_ref(
    positions: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    eps: float,
    cos_sin_cache: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cache_loc: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
    sm_scale: float,
) -> torch.Tensor:
    """Same arguments and result as ``decode_attention`` (less its buffers); writes the new
    keys and values to the caches the same way."""
    n_tok, d = positions.numel(), cos_sin_cache.shape[-1]
    q = q.reshape(n_tok, -1, d).clone()
    k = k.reshape(n_tok, -1, d).clone()
    qk_norm_rope_ref(positions, q, k, q_weight, k_weight, eps, d, cos_sin_cache,
                     value=v.reshape(n_tok, -1, d), k_cache=k_cache, v_cache=v_cache,
                     cache_loc=cache_loc)  # fmt: skip
    group = q.shape[1] // k_cache.shape[1]
    out = torch.empty(n_tok, q.shape[1], d, dtype=torch.float32, device=q.device)
    for b in range(n_tok):
        slots = kv_indices[kv_indptr[b] : kv_indptr[b + 1]].long()
        keys = k_cache[slots].float().repeat_interleave(group, dim=1)  # [n, H_q, D]
        vals = v_cache[slots].float().repeat_interleave(group, dim=1)
        logits = torch.einsum("hd,nhd->hn", q[b].float(), keys) * sm_scale
        out[b] = torch.einsum("hn,nhd->hd", torch.softmax(logits, dim=-1), vals)
    return out.to(q.dtype).reshape(n_tok, -1)
