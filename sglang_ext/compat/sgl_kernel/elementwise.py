"""sgl_kernel 0.1.7's norm, gated-activation and rotary ops, as sglang 0.4.7 calls them.

Each function keeps sgl_kernel's calling convention (argument order, ``out=``, in-place
updates), checks its arguments, and runs, as ``_impl.provider`` picks: flashinfer's kernel
(``sglang_ext.compat.flashinfer_ops``, where it takes the call), the Triton kernel from
``sglang_ext.kernels`` (``norm``, ``activation``, ``rope``), or its plain-torch reference
(``*_ref``).  All compute in float32 and round once to the tensor's dtype.  Call sites:
``layers/layernorm.py`` (norms, the q/k norms of ``models/qwen3_moe.py``),
``layers/activation.py`` and ``moe/fused_moe_triton/fused_moe.py`` (``*_and_mul``),
``layers/rotary_embedding.py`` (rope).
"""

from __future__ import annotations

import torch

from ._impl import provider

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


def _norm(op: str, x, weight, eps, out, gemma: bool) -> torch.Tensor:
    _check_norm_args(op, x, weight)
    if out is not None and out.shape != x.shape:
        raise ValueError(f"sgl_kernel.{op}: out {tuple(out.shape)} != input {tuple(x.shape)}")
    p = provider(x)
    if p == "flashinfer":
        from sglang_ext.compat import flashinfer_ops as fi

        if fi.norm_ok(x, weight, out):
            return fi.rmsnorm(x, weight, eps, out, gemma)
    if p != "torch":
        from sglang_ext.kernels.norm import rmsnorm as impl
    else:
        from sglang_ext.kernels.norm_ref import rmsnorm_ref as impl
    return impl(x, weight, eps, out=out, gemma=gemma)


def _fused_add(op: str, x, residual, weight, eps, gemma: bool) -> None:
    _check_norm_args(op, x, weight)
    if residual.shape != x.shape:
        raise ValueError(
            f"sgl_kernel.{op}: residual {tuple(residual.shape)} != input {tuple(x.shape)}"
        )
    p = provider(x)
    if p == "flashinfer":
        from sglang_ext.compat import flashinfer_ops as fi

        if fi.norm_ok(x, weight, residual):
            return fi.fused_add_rmsnorm(x, residual, weight, eps, gemma)
    if p != "torch":
        from sglang_ext.kernels.norm import fused_add_rmsnorm as impl
    else:
        from sglang_ext.kernels.norm_ref import fused_add_rmsnorm_ref as impl
    impl(x, residual, weight, eps, gemma=gemma)


def rmsnorm(
    input: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out: torch.Tensor | None = None,
    enable_pdl: bool | None = None,
) -> torch.Tensor:
    """``out = input / sqrt(mean(input^2) + eps) * weight``; returns ``out`` (new if None)."""
    return _norm("rmsnorm", input, weight, eps, out, gemma=False)


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
    _fused_add("fused_add_rmsnorm", input, residual, weight, eps, gemma=False)


def gemma_rmsnorm(
    input: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    out: torch.Tensor | None = None,
    enable_pdl: bool | None = None,
) -> torch.Tensor:
    """Gemma's RMSNorm: ``input / sqrt(mean(input^2) + eps) * (1 + weight)``."""
    return _norm("gemma_rmsnorm", input, weight, eps, out, gemma=True)


def gemma_fused_add_rmsnorm(
    input: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    enable_pdl: bool | None = None,
) -> None:
    """In place: ``residual += input``, then ``input = gemma_rmsnorm(residual)``."""
    _fused_add("gemma_fused_add_rmsnorm", input, residual, weight, eps, gemma=True)


def _gated(op: str, input: torch.Tensor, out: torch.Tensor | None, act: str) -> torch.Tensor:
    # input: [..., 2d] -> out: [..., d] = act(input[..., :d]) * input[..., d:]
    if input.shape[-1] % 2:
        raise ValueError(f"sgl_kernel.{op}: last dim of input must be even, got {input.shape}")
    d = input.shape[-1] // 2
    shape = input.shape[:-1] + (d,)
    if out is None:
        out = torch.empty(shape, dtype=input.dtype, device=input.device)
    elif out.shape != shape:
        raise ValueError(f"sgl_kernel.{op}: out must have shape {tuple(shape)}, got {out.shape}")
    p = provider(input)
    if p == "flashinfer":
        from sglang_ext.compat import flashinfer_ops as fi

        if fi.gated_ok(input, out):
            return fi.gated_act(input, out, act)
    if p != "torch":
        from sglang_ext.kernels.activation import gated_act as impl
    else:
        from sglang_ext.kernels.activation_ref import gated_act_ref as impl
    return impl(input, out, act)


def silu_and_mul(input: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """SwiGLU gate: ``out = silu(input[..., :d]) * input[..., d:]``; returns ``out``."""
    return _gated("silu_and_mul", input, out, "silu")


def gelu_and_mul(input: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``out = gelu(input[..., :d]) * input[..., d:]`` with the exact (erf) GELU."""
    return _gated("gelu_and_mul", input, out, "gelu")


def gelu_tanh_and_mul(input: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """``out = gelu_tanh(input[..., :d]) * input[..., d:]`` (tanh-approximated GELU)."""
    return _gated("gelu_tanh_and_mul", input, out, "gelu_tanh")


def apply_rope_with_cos_sin_cache_inplace(
    positions: torch.Tensor,
    query: torch.Tensor,
    key: torch.Tensor,
    head_size: int,
    cos_sin_cache: torch.Tensor,
    is_neox: bool = True,
) -> None:
    """Rotate ``query`` and ``key`` in place by the angles of ``positions``.

    ``query``/``key``: ``[T, H * head_size]`` (any strides, e.g. slices of a fused qkv) or
    ``[T, H, head_size]``.  ``cos_sin_cache``: float32 ``[max_pos, rotary_dim]`` holding
    ``cos`` in the first half and ``sin`` in the second; only the first ``rotary_dim``
    channels of each head rotate.  ``is_neox``: pairs ``(i, i + r/2)``; otherwise
    interleaved pairs ``(2i, 2i + 1)`` (GPT-J).  Any head size (sglang sends head sizes
    other than 64/128/256/512 to vLLM's op instead; patch 0015 sends them here).
    """
    op = "sgl_kernel.apply_rope_with_cos_sin_cache_inplace"
    if cos_sin_cache.dtype != torch.float32:
        raise ValueError(f"{op}: cos_sin_cache must be float32, got {cos_sin_cache.dtype}")
    rot = cos_sin_cache.shape[-1]
    if rot % 2 or rot > head_size:
        raise ValueError(f"{op}: rotary_dim {rot} must be even and <= head_size {head_size}")
    for name, t in (("query", query), ("key", key)):
        if t is not None and t.shape[-1] % head_size and t.dim() == 2:
            raise ValueError(f"{op}: {name} width {t.shape[-1]} is not a multiple of {head_size}")
    p = provider(query)
    if p == "flashinfer":
        from sglang_ext.compat import flashinfer_ops as fi

        if fi.rope_ok(positions, query, key, head_size, cos_sin_cache):
            return fi.apply_rope_inplace(positions, query, key, head_size, cos_sin_cache, is_neox)
    if p != "torch":
        from sglang_ext.kernels.rope import apply_rope_inplace as impl
    else:
        from sglang_ext.kernels.rope_ref import rope_ref as impl
    impl(positions, query, key, head_size, cos_sin_cache, is_neox)
