"""Triton kernels for the single-expert SwiGLU MLP shard (launched by ``fused_mlp.py``).

Two launches, no atomics, no cross-program signalling, no workspace state between calls:

* ``gemm1_kernel``: programs tile (M-block, I-block[, K-split over H]).  Without K-split it
  applies SwiGLU in the epilogue and writes ``h = silu(x Wg^T) * (x Wu^T)`` in the input
  dtype.  With K-split (small M: a decode step has too few (M, I) tiles to fill 132 SMs) each
  program writes its fp32 partial gate/up sums to ``p[k_split, M, 2I]`` with plain stores.
* ``gemm2_kernel``: programs tile (M-block, H-block).  It reads ``h``, or sums the partials of
  ``p`` over the K-splits and applies SwiGLU itself (fp32, then rounded to the input dtype for
  the tensor-core dot, as torch rounds h), then ``out = h @ W2^T``.

All dots accumulate in fp32.  Deterministic: the same inputs give the same bits.
Shapes: x [M, H], w13 [2I, H] (gate rows 0:I, up rows I:2I), w2 [H, I], out [M, H]; unit
stride along each last dim.
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["gemm1_kernel", "gemm1_tile", "gemm2_kernel"]


@triton.jit
def _grouped_pid(pid, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    # tutorial 03's grouped ordering: neighbouring programs share rows of A in L2
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def gemm1_tile(
    x_ptr,
    w13_ptr,
    offs_m,
    offs_i,
    mask_m,
    mask_i,
    k_lo,
    K_PER_SPLIT,
    H,
    I,  # noqa: E741
    stride_xm,
    stride_w13,
    BLOCK_M: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # fp32 gate and up sums [BM, BI] of one (M, I) tile over H[k_lo : k_lo + K_PER_SPLIT]
    # (shared by v2's GEMM1 and the experimental one-launch v4's phase 1)
    acc_g = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
    for k in range(k_lo, k_lo + K_PER_SPLIT, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        xt = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
            mask=mask_m[:, None] & mask_k[None, :],
            other=0.0,
        )  # [BM, BK]
        w_ptrs = w13_ptr + offs_i[None, :] * stride_w13 + offs_k[:, None]
        w_mask = mask_i[None, :] & mask_k[:, None]
        wg = tl.load(w_ptrs, mask=w_mask, other=0.0)  # [BK, BI]
        wu = tl.load(w_ptrs + I * stride_w13, mask=w_mask, other=0.0)
        acc_g = tl.dot(xt, wg, acc_g, input_precision=DOT_PRECISION)
        acc_u = tl.dot(xt, wu, acc_u, input_precision=DOT_PRECISION)
    return acc_g, acc_u


@triton.jit
def gemm1_kernel(
    x_ptr,
    w13_ptr,
    h_ptr,
    p_ptr,
    M,
    H,
    I,  # noqa: E741
    K_PER_SPLIT,
    stride_xm,
    stride_w13,
    stride_hm,
    BLOCK_M: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    SPLIT_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # grid: (cdiv(M, BM) * cdiv(I, BI), k_splits)
    pid_m, pid_i = _grouped_pid(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(I, BLOCK_I), GROUP_M)
    pid_k = tl.program_id(1)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_m = offs_m < M
    mask_i = offs_i < I
    acc_g, acc_u = gemm1_tile(
        x_ptr,
        w13_ptr,
        offs_m,
        offs_i,
        mask_m,
        mask_i,
        pid_k * K_PER_SPLIT,
        K_PER_SPLIT,
        H,
        I,
        stride_xm,
        stride_w13,
        BLOCK_M,
        BLOCK_I,
        BLOCK_K,
        DOT_PRECISION,
    )
    mask_mi = mask_m[:, None] & mask_i[None, :]
    if SPLIT_K:
        # p: [k_splits, M, 2I] fp32; every (k, m < M, i < I) is written by exactly one program
        p_ptrs = p_ptr + pid_k * M * 2 * I + offs_m[:, None] * (2 * I) + offs_i[None, :]
        tl.store(p_ptrs, acc_g, mask=mask_mi)
        tl.store(p_ptrs + I, acc_u, mask=mask_mi)
    else:
        h = acc_g * tl.sigmoid(acc_g) * acc_u
        tl.store(
            h_ptr + offs_m[:, None] * stride_hm + offs_i[None, :],
            h.to(h_ptr.dtype.element_ty),
            mask=mask_mi,
        )


@triton.jit
def gemm2_kernel(
    h_ptr,
    p_ptr,
    w2_ptr,
    out_ptr,
    M,
    H,
    I,  # noqa: E741
    K_SPLITS,
    stride_hm,
    stride_w2,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    FROM_PARTIALS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # out[M, H] = h[M, I] @ w2[H, I]^T; grid: (cdiv(M, BM) * cdiv(H, BN),)
    pid_m, pid_n = _grouped_pid(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(H, BLOCK_N), GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < H
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k in range(0, I, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < I
        a_mask = mask_m[:, None] & mask_k[None, :]
        if FROM_PARTIALS:
            g = tl.zeros((BLOCK_M, BLOCK_K), tl.float32)
            u = tl.zeros((BLOCK_M, BLOCK_K), tl.float32)
            p_ptrs = p_ptr + offs_m[:, None] * (2 * I) + offs_k[None, :]
            for s in range(0, K_SPLITS):
                g += tl.load(p_ptrs + s * M * 2 * I, mask=a_mask, other=0.0)
                u += tl.load(p_ptrs + s * M * 2 * I + I, mask=a_mask, other=0.0)
            a = (g * tl.sigmoid(g) * u).to(w2_ptr.dtype.element_ty)
        else:
            a = tl.load(
                h_ptr + offs_m[:, None] * stride_hm + offs_k[None, :], mask=a_mask, other=0.0
            )
        b = tl.load(
            w2_ptr + offs_n[None, :] * stride_w2 + offs_k[:, None],
            mask=mask_n[None, :] & mask_k[:, None],
            other=0.0,
        )  # [BK, BN]
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
    tl.store(
        out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=mask_m[:, None] & mask_n[None, :],
    )
