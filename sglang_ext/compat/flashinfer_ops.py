"""flashinfer's kernels behind the sgl_kernel stand-in's norm, gated-activation and rope ops.

sgl-kernel 0.1.7 builds these very ops on flashinfer's kernels; here they are called through
flashinfer-python 0.2.6.post1 (``flashinfer.norm``, ``flashinfer.activation``,
``flashinfer.rope``; import and JIT cache: ``flashinfer_jit``).  Each ``*_ok`` says whether
flashinfer's kernel takes the call as given: fp16/bf16 only, the layouts its CUDA code
assumes (2-D rows for the norms, contiguous rows for the activations, head sizes
64/128/256/512 for rope) and 16-byte aligned rows (its vector loads).  The stand-in runs the
Triton kernel for every other call, so no caller sees a flashinfer restriction.  Each
function keeps sgl_kernel's calling convention (in place, ``out=``).
"""

from __future__ import annotations

import torch

from sglang_ext.compat.flashinfer_jit import load

__all__ = [
    "norm_ok",
    "gated_ok",
    "rope_ok",
    "rmsnorm",
    "fused_add_rmsnorm",
    "gated_act",
    "apply_rope_inplace",
]

_DTYPES = (torch.float16, torch.bfloat16)
_ROPE_HEADS = (64, 128, 256, 512)


def _rows_aligned(t: torch.Tensor) -> bool:
    """Last dim contiguous, start and every outer stride on 16 bytes."""
    e = t.element_size()
    return (
        t.stride(-1) == 1
        and t.data_ptr() % 16 == 0
        and all((s * e) % 16 == 0 for s in t.stride()[:-1])
    )


def norm_ok(x: torch.Tensor, weight: torch.Tensor, *others: torch.Tensor | None) -> bool:
    """flashinfer's (fused-add) rmsnorm takes ``x`` [T, D] with ``weight`` [D] and ``others``
    (out, residual) [T, D]."""
    ts = [x, *(o for o in others if o is not None)]
    return (
        x.dim() == 2
        and x.shape[0] > 0
        and x.dtype in _DTYPES
        and weight.dtype == x.dtype
        and weight.is_contiguous()
        and all(t.dim() == 2 and t.dtype == x.dtype and _rows_aligned(t) for t in ts)
    )


def gated_ok(x: torch.Tensor, out: torch.Tensor) -> bool:
    """flashinfer's ``*_and_mul`` takes contiguous ``x`` [..., 2d] and ``out`` [..., d] with
    ``d`` a whole number of 16-byte vectors (its kernel indexes rows as contiguous)."""
    d = out.shape[-1]
    return (
        x.dtype in _DTYPES
        and out.dtype == x.dtype
        and x.numel() > 0
        and x.is_contiguous()
        and out.is_contiguous()
        and (d * x.element_size()) % 16 == 0
        and x.data_ptr() % 16 == 0
        and out.data_ptr() % 16 == 0
    )


def _heads(t: torch.Tensor, head_size: int) -> torch.Tensor | None:
    try:
        return t.view(t.shape[0], -1, head_size)
    except RuntimeError:  # not viewable as [T, H, head_size]
        return None


def rope_ok(positions, query, key, head_size: int, cos_sin_cache) -> bool:
    """flashinfer's rope with a cos/sin cache takes q/k viewable as [T, H, head_size] for head
    sizes 64/128/256/512, a contiguous float32 cache of rotary_dim a multiple of 16."""
    if key is None or head_size not in _ROPE_HEADS or query.shape[0] == 0:
        return False
    q, k = _heads(query, head_size), _heads(key, head_size)
    return (
        q is not None
        and k is not None
        and query.dtype in _DTYPES
        and key.dtype == query.dtype
        and _rows_aligned(q)
        and _rows_aligned(k)
        and cos_sin_cache.is_contiguous()
        and cos_sin_cache.shape[-1] % 16 == 0
        and positions.is_contiguous()
        and positions.device == query.device
    )


def rmsnorm(x, weight, eps: float, out: torch.Tensor | None, gemma: bool) -> torch.Tensor:
    """``out = x / sqrt(mean(x^2) + eps) * weight`` (``1 + weight`` for gemma)."""
    fi = load()
    if out is None:
        out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    fn = fi.norm.gemma_rmsnorm if gemma else fi.norm.rmsnorm
    fn(x, weight, eps, out=out)
    return out


def fused_add_rmsnorm(x, residual, weight, eps: float, gemma: bool) -> None:
    """In place: ``residual += x``; ``x = rmsnorm(residual)``."""
    fi = load()
    fn = fi.norm.gemma_fused_add_rmsnorm if gemma else fi.norm.fused_add_rmsnorm
    fn(x, residual, weight, eps)


def gated_act(x: torch.Tensor, out: torch.Tensor, act: str) -> torch.Tensor:
    """``out = act(x[..., :d]) * x[..., d:]``, act in silu, gelu (erf), gelu_tanh."""
    fi = load()
    getattr(fi.activation, f"{act}_and_mul")(x, out=out)
    return out


def apply_rope_inplace(positions, query, key, head_size: int, cos_sin_cache, is_neox: bool):
    """Rotate ``query`` and ``key`` in place by the cached cos/sin of ``positions``."""
    fi = load()
    fi.rope.apply_rope_with_cos_sin_cache_inplace(
        positions, query, key, head_size, cos_sin_cache, is_neox
    )
