"""Fused SwiGLU MLP shard for the single-expert tensor-parallel MoE (Triton).

``out = (silu(x @ Wg^T) * (x @ Wu^T)) @ W2^T`` with ``w13`` [2I, H] (gate rows 0:I, up rows
I:2I) and ``w2`` [H, I] in SGLang's FusedMoE layout, I being this rank's shard; the TP
all-reduce follows outside.  Two launches (see ``fused_mlp_kernels``): GEMM1 with the SwiGLU
epilogue (split over H for small M, its fp32 partials reduced by GEMM2), then GEMM2.
fp32 accumulation throughout.  ``MlpLaunchConfig(one_launch=True)`` selects the experimental
one-launch v4 (``experimental/fused_mlp_onelaunch``, imported only then) instead.  ``SGLANG_EXT_FUSED_MLP=0`` makes
:func:`is_available` say no, so the layer falls back to torch.
"""

from __future__ import annotations

import functools
import os

import torch
import triton

from .fused_mlp_configs import MlpLaunchConfig, get_config
from .fused_mlp_kernels import gemm1_kernel, gemm2_kernel

__all__ = ["fused_swiglu_mlp", "is_available", "MlpLaunchConfig"]

ENV_SWITCH = "SGLANG_EXT_FUSED_MLP"
_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def is_available(device: torch.device | str | None = None) -> bool:
    """True when the Triton kernel can run on ``device`` and is not switched off by env."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "off", "no"):
        return False
    dev = (
        torch.device(device)
        if device is not None
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )
    if dev.type == "cuda":
        return torch.cuda.is_available()
    return dev.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


@functools.lru_cache(maxsize=16)
def _device_facts(device: torch.device) -> tuple[str, int]:
    if device.type != "cuda":
        return "cpu", 4
    props = torch.cuda.get_device_properties(device)
    return props.name, props.multi_processor_count


def _check(x: torch.Tensor, w13: torch.Tensor, w2: torch.Tensor, out: torch.Tensor | None):
    for name, t in (("x", x), ("w13", w13), ("w2", w2)):
        if t.dim() != 2:
            raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
        if t.dtype not in _DTYPES:
            raise TypeError(f"{name}.dtype={t.dtype}: use bfloat16 or float16 (float32 for tests)")
        if t.dtype != x.dtype:
            raise TypeError(f"{name}.dtype={t.dtype} differs from x.dtype={x.dtype}; cast first")
        if t.device != x.device:
            raise ValueError(f"{name} is on {t.device} but x is on {x.device}; move it")
        if t.stride(-1) != 1:
            raise ValueError(f"{name} must have unit stride on its last dim; call .contiguous()")
    m, hidden = x.shape
    if w13.shape[0] % 2 or w13.shape[1] != hidden:
        raise ValueError(f"w13 must be [2*I, H={hidden}], got {tuple(w13.shape)}")
    inter = w13.shape[0] // 2
    if w2.shape != (hidden, inter):
        raise ValueError(f"w2 must be [H, I] = [{hidden}, {inter}], got {tuple(w2.shape)}")
    if not (w13.is_contiguous() and w2.is_contiguous()):
        raise ValueError("w13 and w2 must be contiguous; call .contiguous() once at load time")
    if out is not None:
        if out.shape != (m, hidden) or out.dtype != x.dtype or out.device != x.device:
            raise ValueError(
                f"out must be [{m}, {hidden}] {x.dtype} on {x.device}, got "
                f"{tuple(out.shape)} {out.dtype} on {out.device}"
            )
        if out.stride(-1) != 1:
            raise ValueError("out must have unit stride on its last dim")
    if x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError(
            "x is on the CPU: move it to CUDA, or set TRITON_INTERPRET=1 before "
            "importing triton (tests), or use swiglu_mlp_ref"
        )


def fused_swiglu_mlp(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    config: MlpLaunchConfig | None = None,
) -> torch.Tensor:
    """x: [M, H], w13: [2I, H], w2: [H, I] -> out [M, H] (written into ``out`` if given).

    ``config`` overrides the tuned/heuristic launch config (tests and tuning use it).
    """
    _check(x, w13, w2, out)
    m, hidden = x.shape
    inter = w13.shape[0] // 2
    if out is None:
        out = torch.empty((m, hidden), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    name, num_sms = _device_facts(x.device)
    cfg = config or get_config(m, hidden, inter, name, num_sms)
    precision = "ieee" if x.dtype == torch.float32 else "tf32"  # tf32 unused for 16-bit
    if cfg.one_launch:
        from .experimental.fused_mlp_onelaunch import launch_one

        launch_one(x, w13, w2, out, cfg, precision)
    else:
        _launch(x, w13, w2, out, cfg, precision)
    return out


def _launch(x, w13, w2, out, cfg: MlpLaunchConfig, precision: str) -> None:
    m, hidden = x.shape
    inter = w13.shape[0] // 2
    k_blocks = triton.cdiv(hidden, cfg.block_k)
    k_per_split = triton.cdiv(k_blocks, min(cfg.k_splits, k_blocks)) * cfg.block_k
    k_splits = triton.cdiv(hidden, k_per_split)  # every split gets >= 1 K-block
    split = k_splits > 1
    # split: fp32 partial gate/up sums [k_splits, M, 2I]; else h [M, I] in the input dtype.
    # Both are fully overwritten each call, so torch.empty is enough.
    if split:
        p = torch.empty((k_splits, m, 2 * inter), dtype=torch.float32, device=x.device)
        h = p
    else:
        h = torch.empty((m, inter), dtype=x.dtype, device=x.device)
        p = h
    grid1 = (triton.cdiv(m, cfg.block_m) * triton.cdiv(inter, cfg.block_i), k_splits)
    gemm1_kernel[grid1](
        x,
        w13,
        h,
        p,
        m,
        hidden,
        inter,
        k_per_split,
        x.stride(0),
        w13.stride(0),
        h.stride(0),
        BLOCK_M=cfg.block_m,
        BLOCK_I=cfg.block_i,
        BLOCK_K=cfg.block_k,
        GROUP_M=cfg.group_m,
        SPLIT_K=split,
        DOT_PRECISION=precision,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    grid2 = (triton.cdiv(m, cfg.block_m) * triton.cdiv(hidden, cfg.block_n),)
    block_k2 = min(cfg.block_k2, max(16, triton.next_power_of_2(inter)))
    gemm2_kernel[grid2](
        h,
        p,
        w2,
        out,
        m,
        hidden,
        inter,
        k_splits,
        h.stride(0),
        w2.stride(0),
        out.stride(0),
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_K=block_k2,
        GROUP_M=cfg.group_m,
        FROM_PARTIALS=split,
        DOT_PRECISION=precision,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
