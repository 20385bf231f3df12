"""Plain-torch RMSNorm references (the sgl_kernel stand-in's torch path and fallback).

float32 math, one rounding to the output dtype, as sgl-kernel's flashinfer kernels do.
``fused_add_rmsnorm_ref`` normalises the float32 sum before ``residual`` is rounded.
"""

from __future__ import annotations

import torch

__all__ = ["rmsnorm_ref", "fused_add_rmsnorm_ref"]


def _normalize(x32: torch.Tensor, w: torch.Tensor, eps: float, gemma: bool) -> torch.Tensor:
    # x32: [..., D] float32 -> x / sqrt(mean(x^2) + eps) * w (gemma: * (1 + w)), float32
    w32 = w.float() + 1.0 if gemma else w.float()
    return x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps) * w32


def rmsnorm_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
    gemma: bool = False,
) -> torch.Tensor:
    """``out = x / sqrt(mean(x^2) + eps) * weight``; a new tensor when ``out`` is None."""
    y = _normalize(x.float(), weight, eps, gemma)
    if out is None:
        return y.to(x.dtype)
    out.copy_(y)
    return out


def fused_add_rmsnorm_ref(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float, gemma: bool = False
) -> None:
    """In place: ``residual += x``; ``x = rmsnorm(residual)`` (of the float32 sum)."""
    s = x.float() + residual.float()  # [..., D] float32
    residual.copy_(s)
    x.copy_(_normalize(s, weight, eps, gemma))
