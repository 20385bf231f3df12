"""The decode layer's RMSNorm inside the linear after it: one launch for ``norm -> linear``.

At decode, each decoder layer runs ``fused_add_rmsnorm`` twice (before attention and before
the MLP), and each is a kernel of its own that reads a few KB: on the H200 the two cost the
30B chain 3.9 us of its 36 us per layer (``bench/results/h200/gpu_call31.log``, a chain of our
kernels with and without them).  Here the norm runs in the prologue of the skinny GEMM that
consumes it (``kernels.gemv``'s tiles, launches and table)::

    s        = x + residual                  (float32; residual None: s = x)
    new_res  = s, rounded to x's dtype       (program 0 writes it, into a new tensor)
    y        = (s / rms(s) * norm_weight) @ w^T
    swiglu:  y = silu(y_gate) * y_up,  gate rows w[:N], up rows w[N:2N]   (the MLP's w13)

Every program needs the whole rows' rms, but not before its products: 1 / rms(s) is a
factor of each output, so a program accumulates ``sum_k w[n, k] * s[k] * norm_weight[k]``
and ``sum_k s[k]^2`` in the same walk over K and scales once at the end.  No pre-pass, no
extra read of the weight, and the weight loads are issued as in ``gemv``.  The products use
s * norm_weight unrounded (CUDA cores) or rounded once to the weight's dtype (tensor cores),
where the separate kernels round the normalised row: the same or less rounding error.

The residual is written to a new tensor, never in place: other programs still read it.
With programmatic dependent launch (``kernels.pdl``) a program asks L2 for its weight rows
before it waits for the kernel before it, as ``gemv`` does.
With ``swiglu`` a program owns ``BLOCK_N`` outputs and so reads 2 x BLOCK_N weight rows.
The plain-torch reference is ``norm_gemv_ref``.  Serving calls it through
``serving.fused_layer`` (patch 0023), with the launch :func:`fused_launch` picks.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from triton.runtime import JITFunction

from . import pdl
from .gemv import (
    MAX_M,
    GemvConfig,
    check_device,
    check_operands,
    default_config,
    line_elems,
    prefetch_rows_l2,
)
from .gemv_dispatch import launch_for

__all__ = ["MAX_M", "MIN_ROWS", "fused_launch", "norm_gemv", "swiglu_config", "worth_fusing"]

MIN_ROWS = 3
"""Weight rows a program must read for the norm to ride along (:func:`worth_fusing`)."""


@triton.jit(do_not_specialize=["M"])
def _norm_gemv_kernel(
    x_ptr,
    r_ptr,
    nw_ptr,
    w_ptr,
    y_ptr,
    ro_ptr,
    M,
    N,
    K,
    sx_m,
    sr_m,
    sw_n,
    sy_m,
    sro_m,
    eps,
    HAS_RES: tl.constexpr,
    SWIGLU: tl.constexpr,
    USE_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    PDL: tl.constexpr,
    LINE: tl.constexpr,
):
    pid = tl.program_id(0)
    rn = pid * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N] outputs
    rk = tl.arange(0, BLOCK_K)
    nmask = rn < N
    if PDL:  # the weight is no kernel's output: stream it into L2 while the previous runs
        prefetch_rows_l2(w_ptr, rn, N, K, sw_n, BLOCK_K, LINE)
        if SWIGLU:
            prefetch_rows_l2(w_ptr + N * sw_n, rn, N, K, sw_n, BLOCK_K, LINE)
        pdl.wait_then_release()  # before any read of x or the residual, or any write
    wg_ptrs = w_ptr + rn.to(tl.int64)[:, None] * sw_n + rk[None, :]  # gate (or only) rows
    wu_ptrs = wg_ptrs + N * sw_n  # up rows (SWIGLU)
    writer = pid == 0  # the one program that writes the new residual
    if USE_DOT:
        rm = tl.arange(0, BLOCK_M)
        mmask = rm < M
        acc_g = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        acc_u = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        ss = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            kmask = rk < K - k0
            wmask = nmask[:, None] & kmask[None, :]
            wg = tl.load(wg_ptrs, mask=wmask, other=0.0)
            if SWIGLU:
                wu = tl.load(wu_ptrs, mask=wmask, other=0.0)
            tmask = kmask[:, None] & mmask[None, :]  # [BLOCK_K, BLOCK_M], x^T tiles
            kk = (k0 + rk)[:, None]
            s = tl.load(x_ptr + rm[None, :] * sx_m + kk, mask=tmask, other=0.0).to(tl.float32)
            if HAS_RES:
                s += tl.load(r_ptr + rm[None, :] * sr_m + kk, mask=tmask, other=0.0).to(tl.float32)
                tl.store(ro_ptr + rm[None, :] * sro_m + kk, s.to(ro_ptr.dtype.element_ty),
                         mask=tmask & writer)  # fmt: skip
            ss += tl.sum(s * s, axis=0)
            nw = tl.load(nw_ptr + k0 + rk, mask=kmask, other=0.0).to(tl.float32)
            a = (s * nw[:, None]).to(w_ptr.dtype.element_ty)
            acc_g = tl.dot(wg, a, acc_g, input_precision="ieee")  # float32: no TF32
            if SWIGLU:
                acc_u = tl.dot(wu, a, acc_u, input_precision="ieee")
            wg_ptrs += BLOCK_K
            wu_ptrs += BLOCK_K
        rstd = 1.0 / tl.sqrt(ss / K + eps)  # [BLOCK_M]
        y = acc_g * rstd[None, :]
        if SWIGLU:
            y = y / (1.0 + tl.exp(-y)) * (acc_u * rstd[None, :])
        y_ptrs = y_ptr + rm[None, :] * sy_m + rn[:, None]  # y^T tile [BLOCK_N, BLOCK_M]
        tl.store(y_ptrs, y.to(y_ptr.dtype.element_ty), mask=nmask[:, None] & mmask[None, :])
    else:  # M == 1: products on the CUDA cores, reduced over K once after the loop
        acc_g = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        acc_u = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        ss = tl.zeros((BLOCK_K,), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            kmask = rk < K - k0
            wmask = nmask[:, None] & kmask[None, :]
            wg = tl.load(wg_ptrs, mask=wmask, other=0.0)
            if SWIGLU:
                wu = tl.load(wu_ptrs, mask=wmask, other=0.0)
            s = tl.load(x_ptr + k0 + rk, mask=kmask, other=0.0).to(tl.float32)
            if HAS_RES:
                s += tl.load(r_ptr + k0 + rk, mask=kmask, other=0.0).to(tl.float32)
                tl.store(ro_ptr + k0 + rk, s.to(ro_ptr.dtype.element_ty), mask=kmask & writer)
            ss += s * s
            a = s * tl.load(nw_ptr + k0 + rk, mask=kmask, other=0.0).to(tl.float32)
            acc_g += wg.to(tl.float32) * a[None, :]
            if SWIGLU:
                acc_u += wu.to(tl.float32) * a[None, :]
            wg_ptrs += BLOCK_K
            wu_ptrs += BLOCK_K
        rstd = 1.0 / tl.sqrt(tl.sum(ss, axis=0) / K + eps)
        y = tl.sum(acc_g, axis=1) * rstd
        if SWIGLU:
            y = y / (1.0 + tl.exp(-y)) * (tl.sum(acc_u, axis=1) * rstd)
        tl.store(y_ptr + rn, y.to(y_ptr.dtype.element_ty), mask=nmask)


_COMPILED = isinstance(_norm_gemv_kernel, JITFunction)  # False under TRITON_INTERPRET=1


def swiglu_config(config: GemvConfig) -> GemvConfig:
    """The launch with ``swiglu`` for the table's launch of the plain [2N, K] weight: half
    the outputs per program (each reads a gate and an up row), so the same weight bytes per
    program and the same grid; tensor cores keep the 16 rows ``tl.dot`` needs."""
    low = 16 if config.use_dot else 1
    return GemvConfig(max(low, config.block_n // 2), config.block_k, config.num_warps,
                      config.num_stages, config.use_dot)  # fmt: skip


def worth_fusing(config: GemvConfig, swiglu: bool) -> bool:
    """Whether a launch reads enough weight per program for the norm prologue to pay: each
    program also reads x, the residual and the norm weight (3 x K elements), so fuse only
    where its weight rows (``block_n``, twice that with ``swiglu``) are at least
    ``MIN_ROWS``.  A rule drawn from two measurements, not a table (H200, call 33): the 30B
    batch-1 launches (4 rows per program for qkv and for gate/up) made the graph 1.95 ->
    1.87 ms; the 235B ones (2 rows) made it 7.06 -> 8.35 ms."""
    return config.block_n * (2 if swiglu else 1) >= MIN_ROWS


def fused_launch(x: torch.Tensor, w: torch.Tensor, *, swiglu: bool = False) -> GemvConfig | None:
    """The launch of ``norm_gemv(x, ..., w, swiglu=swiglu)``: the gemv table's launch for w
    (``gemv_dispatch.launch_for``), per output pair with ``swiglu`` (:func:`swiglu_config`);
    None where the table keeps cuBLAS, splits K (this kernel does not) or the launch is too
    narrow to pay (:func:`worth_fusing`): then the caller runs the norm and the linear apart."""
    config = launch_for(x, w)
    if config is None or config.split_k > 1:  # every program needs the whole row's rms
        return None
    if swiglu:
        config = swiglu_config(config)
    return config if worth_fusing(config, swiglu) else None


def _check(x, residual, norm_weight, w, swiglu, config) -> None:
    """Every refusal, before any launch (metadata only: no host sync)."""
    named = [("norm_weight", norm_weight)] + ([("residual", residual)] if residual is not None
                                              else [])  # fmt: skip
    check_operands("norm_gemv", x, w, named, config, use="the norm and F.linear")
    if config is not None and config.split_k > 1:
        raise ValueError(f"norm_gemv: config {config.name} splits K; the norm needs whole "
                         "rows per program: pass it without the split (p<S>)")  # fmt: skip
    (m, k), n = x.shape, w.shape[0]
    if norm_weight.shape != (k,) or norm_weight.stride(0) != 1:
        raise ValueError(f"norm_gemv: norm_weight must be a contiguous [{k}]")
    if residual is not None and (residual.shape != x.shape or residual.stride(1) != 1):
        raise ValueError(
            f"norm_gemv: residual must be [{m}, {k}] with stride(1) == 1, like x; got "
            f"{tuple(residual.shape)} stride {residual.stride()}"
        )
    if swiglu and n % 2:
        raise ValueError(f"norm_gemv: swiglu needs gate and up rows, w has an odd N={n}")
    check_device("norm_gemv", x, _COMPILED)


def norm_gemv(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    norm_weight: torch.Tensor,
    eps: float,
    w: torch.Tensor,
    *,
    swiglu: bool = False,
    config: GemvConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, new residual): ``y = rmsnorm(x + residual) @ w^T`` (``swiglu``: ``silu(gate) *
    up`` of w's two halves), the new residual ``x + residual`` (``x`` itself when
    ``residual`` is None, as sglang's layers keep it).

    x, residual [M, K] (M <= 32; row strides free), norm_weight [K], w [N, K] ([2I, K] with
    swiglu), one dtype and device; ``config``: the launch (None: ``gemv.default_config``;
    with swiglu, pass :func:`swiglu_config` of the plain weight's)."""
    _check(x, residual, norm_weight, w, swiglu, config)
    (m, k), n = x.shape, w.shape[0] // (2 if swiglu else 1)
    config = config or default_config(m, n, k)
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    new_res = torch.empty(m, k, dtype=x.dtype, device=x.device) if residual is not None else x
    if m == 0 or n == 0:
        return y, new_res
    r = residual if residual is not None else x
    _norm_gemv_kernel[(triton.cdiv(n, config.block_n),)](
        x, r, norm_weight, w, y, new_res, m, n, k, x.stride(0), r.stride(0), w.stride(0),
        y.stride(0), new_res.stride(0), eps, HAS_RES=residual is not None, SWIGLU=swiglu,
        USE_DOT=config.use_dot, BLOCK_M=max(16, triton.next_power_of_2(m)),
        BLOCK_N=config.block_n, BLOCK_K=config.block_k, LINE=line_elems(config, w),
        num_warps=config.num_warps, num_stages=config.num_stages, **pdl.launch_kwargs(x),
    )  # fmt: skip
    return y, new_res
