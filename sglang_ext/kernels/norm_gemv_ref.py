"""Plain-torch reference of ``norm_gemv``: the separate ops it fuses, as serving ran them.

``fused_add_rmsnorm_ref`` (float32 sum, the residual rounded, the normalised row rounded to
x's dtype), then ``gemv_ref`` (float32 products, one rounding), then, with ``swiglu``,
``activation_ref``'s silu(gate) * up of that rounded output.
"""

from __future__ import annotations

import torch

from .activation_ref import gated_act_ref
from .gemv_ref import gemv_ref
from .norm_ref import fused_add_rmsnorm_ref, rmsnorm_ref

__all__ = ["norm_gemv_ref"]


def norm_gemv_ref(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    norm_weight: torch.Tensor,
    eps: float,
    w: torch.Tensor,
    *,
    swiglu: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, new residual) of ``norm_gemv``'s arguments; the inputs are not modified."""
    if residual is None:
        h, new_res = rmsnorm_ref(x, norm_weight, eps), x
    else:
        h, new_res = x.clone(), residual.clone()
        fused_add_rmsnorm_ref(h, new_res, norm_weight, eps)
    y = gemv_ref(h, w)
    if swiglu:
        y = gated_act_ref(y, y.new_empty(y.shape[0], y.shape[1] // 2), "silu")
    return y, new_res
