"""Plain-torch reference of the skinny GEMM ``gemv``: ``y = x @ w^T (+ bias)``.

float32 math (the products, their sum and the bias), one rounding to ``x``'s dtype, as the
Triton kernel and cuBLAS's float32-accumulating ``F.linear`` do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["gemv_ref"]


def gemv_ref(x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """x [M, K], w [N, K], bias [N] or None -> [M, N] in ``x.dtype``."""
    b32 = None if bias is None else bias.float()
    return F.linear(x.float(), w.float(), b32).to(x.dtype)
