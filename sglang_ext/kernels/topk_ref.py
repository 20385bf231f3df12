"""Plain-torch ``topk_softmax`` (the stand-in's torch path): softmax over experts, then top-k.

Writes in place: ``topk_weights`` (the softmax probabilities, largest first, not
renormalised), ``topk_ids`` and ``token_expert_indices[m, j] = j * M + m``.
"""

from __future__ import annotations

import torch

__all__ = ["topk_softmax_ref"]


def topk_softmax_ref(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    token_expert_indices: torch.Tensor,
    gating_output: torch.Tensor,
) -> None:
    """Fill the three ``[M, k]`` outputs from ``gating_output`` ([M, E])."""
    m, k = topk_weights.shape
    probs = torch.softmax(gating_output.float(), dim=-1)  # [M, E]
    w, ids = torch.topk(probs, k, dim=-1)  # [M, k], sorted descending
    topk_weights.copy_(w)
    topk_ids.copy_(ids)
    dev = token_expert_indices.device
    rows = torch.arange(m, device=dev, dtype=torch.int64)[:, None]
    cols = torch.arange(k, device=dev, dtype=torch.int64)[None, :]
    token_expert_indices.copy_(cols * m + rows)
