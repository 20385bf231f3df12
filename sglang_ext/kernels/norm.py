"""RMSNorm and fused residual-add RMSNorm in one Triton kernel (sgl_kernel's norm ops).

One launch, one read of each input and one write of each output, float32 math in registers.
A program normalises ``ROWS`` rows of ``D`` channels at once, so the q/k norms (many rows of
``head_dim`` channels) and the hidden-size norms (few long rows) use the same kernel.  Any
strides (rows of a fused buffer included); ``D`` need not be a power of two (masked).
In place where sgl_kernel is: ``fused_add_rmsnorm`` writes ``residual`` and ``x``.
The plain-torch reference is ``norm_ref``; rows longer than ``MAX_D`` use it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl
from .norm_ref import fused_add_rmsnorm_ref, rmsnorm_ref

__all__ = ["rmsnorm", "fused_add_rmsnorm", "MAX_D"]

MAX_D = 16384  # one register tile per row up to this size
_TILE = 2048  # elements per program (ROWS * BLOCK_D) for short rows


@triton.jit
def _rmsnorm_kernel(
    x_ptr,
    r_ptr,
    w_ptr,
    o_ptr,
    n_rows,
    D,
    sx_r,
    sx_c,
    sr_r,
    sr_c,
    so_r,
    so_c,
    eps,
    HAS_RES: tl.constexpr,
    GEMMA: tl.constexpr,
    ROWS: tl.constexpr,
    BLOCK_D: tl.constexpr,
    PDL: tl.constexpr,
):
    if PDL:
        pdl.wait_then_release()
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)  # [ROWS]
    cols = tl.arange(0, BLOCK_D)  # [BLOCK_D]
    cmask = cols < D
    mask = (rows < n_rows)[:, None] & cmask[None, :]
    x = tl.load(x_ptr + rows[:, None] * sx_r + cols[None, :] * sx_c, mask=mask, other=0.0)
    x = x.to(tl.float32)
    if HAS_RES:
        r_ptrs = r_ptr + rows[:, None] * sr_r + cols[None, :] * sr_c
        x += tl.load(r_ptrs, mask=mask, other=0.0).to(tl.float32)
        tl.store(r_ptrs, x.to(r_ptr.dtype.element_ty), mask=mask)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=1) / D + eps)  # [ROWS]
    w = tl.load(w_ptr + cols, mask=cmask, other=0.0).to(tl.float32)
    if GEMMA:
        w += 1.0
    y = x * rstd[:, None] * w[None, :]
    tl.store(
        o_ptr + rows[:, None] * so_r + cols[None, :] * so_c, y.to(o_ptr.dtype.element_ty), mask=mask
    )


def _rows(t: torch.Tensor) -> torch.Tensor | None:
    """``t`` as a [rows, D] view sharing storage, or None when no such view exists."""
    if t.dim() == 2:
        return t
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError:
        return None


def _launch(x2, r2, w, o2, eps: float, gemma: bool) -> None:
    n_rows, d = x2.shape
    block_d = triton.next_power_of_2(d)
    rows = max(1, _TILE // block_d)
    warps = max(1, min(16, rows * block_d // 256))
    r2_ = r2 if r2 is not None else x2
    grid = (triton.cdiv(n_rows, rows),)
    _rmsnorm_kernel[grid](
        x2, r2_, w, o2, n_rows, d, *x2.stride(), *r2_.stride(), *o2.stride(), eps,
        HAS_RES=r2 is not None, GEMMA=gemma, ROWS=rows, BLOCK_D=block_d, num_warps=warps,
        **pdl.launch_kwargs(x2),
    )  # fmt: skip


def rmsnorm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float,
    out: torch.Tensor | None = None,
    gemma: bool = False,
) -> torch.Tensor:
    """``out = x / sqrt(mean(x^2) + eps) * weight`` (gemma: ``* (1 + weight)``); returns out."""
    if out is None:
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    x2, o2 = _rows(x), _rows(out)
    if x2 is None or o2 is None or x.shape[-1] > MAX_D or x.numel() == 0:
        return rmsnorm_ref(x, weight, eps, out=out, gemma=gemma)
    _launch(x2, None, weight, o2, eps, gemma)
    return out


def fused_add_rmsnorm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float, gemma: bool = False
) -> None:
    """In place: ``residual += x``; ``x = rmsnorm(residual)`` (of the float32 sum)."""
    x2, r2 = _rows(x), _rows(residual)
    if x2 is None or r2 is None or x.shape[-1] > MAX_D or x.numel() == 0:
        fused_add_rmsnorm_ref(x, residual, weight, eps, gemma=gemma)
        return
    _launch(x2, r2, weight, x2, eps, gemma)
