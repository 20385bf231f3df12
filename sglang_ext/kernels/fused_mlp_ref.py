"""Plain-torch reference for the single-expert SwiGLU MLP shard.

``out = (silu(x @ Wg^T) * (x @ Wu^T)) @ W2^T`` with the rank's shard of the expert in
SGLang ``FusedMoE`` layout: ``w13`` [2*I, H] (rows 0:I gate, I:2I up), ``w2`` [H, I].
Computes in the dtype it is given (tests call it on float64 copies).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["swiglu_mlp_ref"]


def swiglu_mlp_ref(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
    """x: [M, H], w13: [2I, H], w2: [H, I] -> [M, H], all in ``x.dtype``."""
    inter = w13.shape[0] // 2
    gu = F.linear(x, w13)  # [M, 2I]
    h = F.silu(gu[:, :inter]) * gu[:, inter:]  # [M, I]
    return F.linear(h, w2)  # [M, H]
