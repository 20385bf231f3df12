"""Gated activations ``act(x[..., :d]) * x[..., d:]`` in one Triton kernel (sgl_kernel's
``silu_and_mul``, ``gelu_and_mul``, ``gelu_tanh_and_mul``).

One launch; the gate and up halves are read once, the product written once, float32 math in
registers.  Rows may be strided (a view into a larger buffer); ``d`` need not be a power of
two (masked).  The plain-torch reference is ``activation_ref``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl
from .activation_ref import ACTIVATIONS, gated_act_ref

__all__ = ["gated_act"]

_BLOCK = 1024  # output elements per program along d (at most)
_TILE = 2048  # output elements per program (ROWS * BLOCK)


@triton.jit
def _gated_kernel(
    x_ptr,
    o_ptr,
    n_rows,
    d,
    sx_r,
    sx_c,
    so_r,
    so_c,
    ACT: tl.constexpr,  # 0 silu, 1 gelu (erf), 2 gelu (tanh)
    ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    PDL: tl.constexpr,
):
    if PDL:
        pdl.wait_then_release()
    rows = (tl.program_id(0) * ROWS + tl.arange(0, ROWS)).to(tl.int64)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    mask = (rows < n_rows)[:, None] & (cols < d)[None, :]
    gate_ptrs = x_ptr + rows[:, None] * sx_r + cols[None, :] * sx_c
    a = tl.load(gate_ptrs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(gate_ptrs + d * sx_c, mask=mask, other=0.0).to(tl.float32)
    if ACT == 0:
        g = a / (1.0 + tl.exp(-a))
    elif ACT == 1:
        g = 0.5 * a * (1.0 + tl.erf(a * 0.7071067811865476))
    else:
        u = 0.7978845608028654 * (a + 0.044715 * a * a * a)
        g = a * (1.0 - 1.0 / (1.0 + tl.exp(2.0 * u)))  # 0.5 * a * (1 + tanh(u))
    tl.store(
        o_ptr + rows[:, None] * so_r + cols[None, :] * so_c,
        (g * b).to(o_ptr.dtype.element_ty),
        mask=mask,
    )


def _rows(t: torch.Tensor) -> torch.Tensor | None:
    if t.dim() == 2:
        return t
    try:
        return t.view(-1, t.shape[-1])
    except RuntimeError:
        return None


def gated_act(x: torch.Tensor, out: torch.Tensor, act: str = "silu") -> torch.Tensor:
    """Write ``act(x[..., :d]) * x[..., d:]`` into ``out`` ([..., d]); returns ``out``."""
    if act not in ACTIVATIONS:
        raise ValueError(f"gated_act: act must be one of {ACTIVATIONS}, got {act!r}")
    x2, o2 = _rows(x), _rows(out)
    if x2 is None or o2 is None or out.numel() == 0:
        return gated_act_ref(x, out, act)
    n_rows, d = o2.shape
    block = min(_BLOCK, triton.next_power_of_2(d))
    rows = max(1, _TILE // block)
    grid = (triton.cdiv(n_rows, rows), triton.cdiv(d, block))
    _gated_kernel[grid](
        x2, o2, n_rows, d, *x2.stride(), *o2.stride(),
        ACT=ACTIVATIONS.index(act), ROWS=rows, BLOCK=block, num_warps=4,
        **pdl.launch_kwargs(x2),
    )  # fmt: skip
    return out
