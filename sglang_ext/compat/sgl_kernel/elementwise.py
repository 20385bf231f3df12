"""Plain-torch stand-ins for sgl_kernel 0.1.7's norm, gated-activation and rotary ops.

Each function keeps the calling convention sglang 0.4.7 uses (argument order, ``out=``,
in-place updates) and computes in float32 before one rounding to the tensor's dtype, as the
flashinfer-derived CUDA kernels do.  Call sites: ``layers/layernorm.py`` (norms),
``layers/activation.py`` and ``moe/fused_moe_triton/fused_moe.py`` (``*_and_mul``),
``layers/rotary_embedding.py`` (rope).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "rmsnorm",
    "fused_add_rmsnorm",
    "gemma_rmsnorm",
    "gemma_fused_add_rmsnorm",
    "silu_and_mul",
    "gelu_and_mul",
    "gelu_tanh_and_mul",
    "apply_rope_with_cos_sin_cache_inplace",
]


def _check_norm_args(op: str, x: torch.Tensor, weight: torch.Tensor) -> None:
    if x.shape[-1] != weight.shape[-1] or weight.dim() != 1:
        raise ValueError(
            f"sgl_kernel.{op}: weight must be 1-D of size input.shape[-1]; got input "
            f"{tuple(x.shape)} and weight {tuple(weight.shape)}"
        )


def _rms_normalize(x32: torch.Tensor, weight32: torch.Tensor, eps: float) -> torch.Tensor:
    # x32: [..., D] float32; returns x / sqrt(mean(x^2) + eps) * weight in float32
    return x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + eps) * weight32


def _norm_out(
    op: str, x: torch.Tensor, weight32: torch.Tensor, eps: float, out: torch.Tensor | None
) -> torch.Tensor:
    y = _rms_normalize(x.float(), weight32, eps)
    if out is None:
        return y.to(x.dtype)
    if out.shape != x.shape:
        raise ValueError(f"sgl_kernel.{op}: out {tuple(out.shape)} != input {tuple(x.shape)}")
    out.copy_(y)
    return out


def rmsnorm(
    input: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out: torch.Tensor | None = None,
    enable_pdl: bool | None = None,
) -> torch.Tensor:
    """``out = input / sqrt(mean(input^2) + eps) * weight``; returns ``out`` (new if None)."""
    _check_norm_args("rmsnorm", input, weight)
    return _norm_out("rmsnorm", input, weight.float(), eps, out)


def fused_add_rmsnorm(
    input: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    enable_pdl: bool | None = None,
) -> None:
    """In place: ``residual += input``, then ``input = rmsnorm(residual)``; returns None.

    The sum is normalised in float32 before ``residual`` is rounded to its dtype, as the
    flashinfer kernel does.
    """
    _check_norm_args("fused_add_rmsnorm", input, weight)
    _fused_add(input, residual, weight.float(), eps)


def gemma_rmsnorm(
    input: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out: torch.Tensor | None = None,
    enable_pdl: bool | None = None,
) -> torch.Tensor:
    """Gemma's RMSNorm: ``input / sqrt(mean(input^2) + eps) * (1 + weight)``."""
    _check_norm_args("gemma_rmsnorm", input, weight)
    return _norm_out("gemma_rmsnorm", input, 1.0 + weight.float(), eps, out)


def gemma_fused_add_rmsnorm(
    input: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    enable_pdl: bool | None = None,
) -> None:
    """In place: ``residual += input``, then ``input = gemma_rmsnorm(residual)``."""
    _check_norm_args("gemma_fused_add_rmsnorm", input, weight)
    _fused_add(input, residual, 1.0 + weight.float(), eps)


def _fused_add(x: torch.Tensor, residual: torch.Tensor, w32: torch.Tensor, eps: float) -> None:
    if residual.shape != x.shape:
        raise ValueError(
            f"sgl_kernel fused_add_rmsnorm: residual {tuple(residual.shape)} != input "
            f"{tuple(x.shape)}"
        )
    s = x.float() + residual.float()  # [..., D] float32
    residual.copy_(s)
    x.copy_(_rms_normalize(s, w32, eps))


def _gated(op: str, input: torch.Tensor, out: torch.Tensor | None, act) -> torch.Tensor:
    # input: [..., 2d] -> out: [..., d] = act(input[..., :d]) * input[..., d:]
    if input.shape[-1] % 2:
        raise ValueError(f"sgl_kernel.{op}: last dim of input must be even, got {input.shape}")
    d = input.shape[-1] // 2
    shape = input.shape[:-1] + (d,)
    if out is None:
        out = torch.empty(shape, dtype=input.dtype, device=input.device)
    elif out.shape != shape:
        raise ValueError(f"sgl_kernel.{op}: out must have shape {tuple(shape)}, got {out.shape}")
    torch.mul(act(input[..., :d].float()), input[..., d:], out=out)
    return out


def silu_and_mul(input: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """SwiGLU gate: ``out = silu(input[..., :d]) * input[..., d:]``; returns ``out``."""
    return _gated("silu_and_mul", input, out, F.silu)


def gelu_and_mul(input: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``out = gelu(input[..., :d]) * input[..., d:]`` with the exact (erf) GELU."""
    return _gated("gelu_and_mul", input, out, F.gelu)


def gelu_tanh_and_mul(input: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``out = gelu_tanh(input[..., :d]) * input[..., d:]`` (tanh-approximated GELU)."""
    return _gated("gelu_tanh_and_mul", input, out, lambda t: F.gelu(t, approximate="tanh"))


def apply_rope_with_cos_sin_cache_inplace(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> None:
    """Rotate ``query`` and ``key`` in place by the angles of ``positions``.

    ``query``/``key``: ``[T, H * head_size]`` (any strides whose last dim is contiguous, e.g.
    slices of a fused qkv) or ``[T, H, head_size]``.  ``cos_sin_cache``: float32
    ``[max_pos, rotary_dim]`` holding ``cos`` in the first half and ``sin`` in the second; only
    the first ``rotary_dim`` channels of each head rotate.  ``is_neox``: pairs ``(i, i + r/2)``;
    otherwise interleaved pairs ``(2i, 2i + 1)`` (GPT-J).
    """
    if cos_sin_cache.dtype != torch.float32:
        raise ValueError(
            f"sgl_kernel.apply_rope_with_cos_sin_cache_inplace: cos_sin_cache must be float32, "
            f"got {cos_sin_cache.dtype}"
        )
    rot = cos_sin_cache.shape[-1]
    if rot % 2 or rot > head_size:
        raise ValueError(f"rotary_dim {rot} must be even and <= head_size {head_size}")
    half = rot // 2
    cs = cos_sin_cache.index_select(0, positions.reshape(-1).long())  # [T, rot]
    cos = cs[:, None, :half]  # [T, 1, rot/2]
    sin = cs[:, None, half:]
    for t in (query, key):
        v = t.view(t.shape[0], -1, head_size)  # [T, H, D], shares storage with t
        if is_neox:
            x1, x2 = v[..., :half].float(), v[..., half:rot].float()
            i1, i2 = slice(0, half), slice(half, rot)
        else:
            x1, x2 = v[..., 0:rot:2].float(), v[..., 1:rot:2].float()
            i1, i2 = slice(0, rot, 2), slice(1, rot, 2)
        o1 = x1 * cos - x2 * sin
        o2 = x2 * cos + x1 * sin
        v[..., i1] = o1
        v[..., i2] = o2
