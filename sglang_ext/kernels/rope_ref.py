"""Plain-torch rotary embedding with a cos/sin cache, in place (the stand-in's torch path).

``cos_sin_cache``: ``[max_pos, rotary_dim]``, cos in the first half and sin in the second;
the first ``rotary_dim`` channels of each head rotate, the rest are left as they are.
"""

from __future__ import annotations

import torch

__all__ = ["rope_ref", "heads_view"]


def heads_view(t: torch.Tensor, n_tokens: int, head_size: int) -> torch.Tensor:
    """``t`` ([T, H * head_size] with any row stride, or [T, H, head_size]) as [T, H, D]."""
    if t.dim() == 3:
        return t
    if t.dim() == 2:
        return t.unflatten(-1, (-1, head_size))
    return t.view(n_tokens, -1, head_size)


def rope_ref(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor | None,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool,
) -> None:
    """Rotate ``query`` and ``key`` in place by the angles cached for ``positions``."""
    rot = cos_sin_cache.shape[-1]
    half = rot // 2
    pos = positions.reshape(-1)
    cs = cos_sin_cache.index_select(0, pos.long()).float()  # [T, rot]
    cos, sin = cs[:, None, :half], cs[:, None, half:]  # [T, 1, rot/2]
    for t in (query, key):
        if t is None:
            continue
        v = heads_view(t, pos.numel(), head_size)  # [T, H, D], shares storage with t
        if is_neox:
            i1, i2 = slice(0, half), slice(half, rot)
        else:
            i1, i2 = slice(0, rot, 2), slice(1, rot, 2)
        x1, x2 = v[..., i1].float(), v[..., i2].float()
        o1 = x1 * cos - x2 * sin
        o2 = x2 * cos + x1 * sin
        v[..., i1] = o1.to(v.dtype)
        v[..., i2] = o2.to(v.dtype)
