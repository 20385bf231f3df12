"""Plain-torch q/k per-head RMSNorm then rotary embedding, in place (``qk_norm_rope``'s
reference): the norm reference, then the rope reference, as sglang's Qwen3 attention
composes ``q_norm``/``k_norm`` and ``rotary_emb``."""

from __future__ import annotations

import torch

from .norm_ref import rmsnorm_ref
from .rope_ref import heads_view, rope_ref

__all__ = ["qk_norm_rope_ref"]


def qk_norm_rope_ref(
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
    """Norm, rotate, and (given the caches) ``set_kv_buffer``'s two row writes."""
    n_tok = positions.numel()
    for t, w in ((query, q_weight), (key, k_weight)):
        v = heads_view(t, n_tok, head_dim)
        v.copy_(rmsnorm_ref(v, w, eps))
    rope_ref(positions, query, key, head_dim, cos_sin_cache, is_neox)
    if value is not None:
        loc = cache_loc.reshape(-1).long()
        k_cache[loc] = heads_view(key, n_tok, head_dim)
        v_cache[loc] = heads_view(value, n_tok, head_dim)
