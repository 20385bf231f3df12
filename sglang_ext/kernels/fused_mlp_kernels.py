"""Triton kernels for the single-expert SwiGLU MLP shard (launched by ``fused_mlp.py``).

Two designs, picked per shape and M by the launch config:

* ``fused_mlp_splitk_kernel`` -- ONE launch, for small and mid M.  Programs tile
  (M-block, I-block, K-split).  Each computes partial gate/up sums over its slice of H and
  adds them (fp32 atomics) into a workspace; the last program to finish an (M, I) block
  (an acq_rel counter) applies SiLU*up, multiplies by the matching W2 columns and adds into an
  fp32 output workspace; the last I-block of an M-block casts that into ``out``.  The last
  arriver also zeroes the workspace and counters, so the next call needs no memset.  With one
  K-split or one I-block the matching workspace stage is skipped.  No program ever waits
  for another, so it runs under ``TRITON_INTERPRET=1`` and in any launch order.
* ``gemm1_swiglu_kernel`` + ``gemm2_kernel`` -- two tiled GEMMs for large M: the first writes
  ``h = silu(x Wg^T) * (x Wu^T)`` in the input dtype, the second ``out = h W2^T``.

All dots accumulate in fp32.  Shapes: x [M, H], w13 [2I, H] (gate rows 0:I, up rows I:2I),
w2 [H, I], out [M, H]; all rows contiguous (unit stride along the last dim).
"""

from __future__ import annotations

import triton
import triton.language as tl

__all__ = ["fused_mlp_splitk_kernel", "gemm1_swiglu_kernel", "gemm2_kernel"]


@triton.jit
def _down_proj(
    h, w2_ptr, out_ptr, out_ws_ptr, done_ptr, offs_m, mask_m, offs_i, mask_i,
    H, stride_w2, stride_om, I_BLOCKS,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, USE_OUT_WS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # h: [BLOCK_M, BLOCK_I] fp32 -> out[offs_m, :] (+)= h @ w2[:, offs_i]^T
    hq = h.to(w2_ptr.dtype.element_ty)
    for n in range(0, H, BLOCK_N):
        offs_n = n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < H
        w = tl.load(
            w2_ptr + offs_n[None, :] * stride_w2 + offs_i[:, None],
            mask=mask_i[:, None] & mask_n[None, :], other=0.0,
        )  # [BLOCK_I, BLOCK_N]
        o = tl.dot(hq, w, input_precision=DOT_PRECISION)  # [BLOCK_M, BLOCK_N] fp32
        omask = mask_m[:, None] & mask_n[None, :]
        if not USE_OUT_WS:
            o_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
            tl.store(o_ptrs, o.to(out_ptr.dtype.element_ty), mask=omask)
        else:
            ws_ptrs = out_ws_ptr + offs_m[:, None] * H + offs_n[None, :]
            tl.atomic_add(ws_ptrs, o, mask=omask, sem="relaxed")
    if USE_OUT_WS:
        # every thread's adds are done before one thread publishes (release) the count
        tl.debug_barrier()
        done = tl.atomic_add(done_ptr, 1, sem="acq_rel")
        if done == I_BLOCKS - 1:  # last I-block of this M-block: cast, then clean up
            for n in range(0, H, BLOCK_N):
                offs_n = n + tl.arange(0, BLOCK_N)
                omask = mask_m[:, None] & (offs_n < H)[None, :]
                ws_ptrs = out_ws_ptr + offs_m[:, None] * H + offs_n[None, :]
                v = tl.load(ws_ptrs, mask=omask, other=0.0, cache_modifier=".cg")
                o_ptrs = out_ptr + offs_m[:, None] * stride_om + offs_n[None, :]
                tl.store(o_ptrs, v.to(out_ptr.dtype.element_ty), mask=omask)
                tl.store(ws_ptrs, tl.zeros((BLOCK_M, BLOCK_N), tl.float32), mask=omask)
            tl.store(done_ptr, 0)


@triton.jit
def fused_mlp_splitk_kernel(
    x_ptr, w13_ptr, w2_ptr, out_ptr, gu_ws_ptr, out_ws_ptr, cnt_ptr,
    M, H, I, K_PER_SPLIT, K_SPLITS, I_BLOCKS,
    stride_xm, stride_w13, stride_w2, stride_om,
    BLOCK_M: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr, USE_GU_WS: tl.constexpr, USE_OUT_WS: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    # USE_GU_WS == (K_SPLITS > 1), USE_OUT_WS == (I_BLOCKS > 1): compile-time branches
    # grid: (cdiv(M, BLOCK_M) * I_BLOCKS * K_SPLITS,), K-split fastest so that the splits of
    # one (M, I) block run side by side.
    pid = tl.program_id(0)
    pid_k = pid % K_SPLITS
    pid_mi = pid // K_SPLITS
    pid_i = pid_mi % I_BLOCKS
    pid_m = pid_mi // I_BLOCKS
    m_blocks = tl.cdiv(M, BLOCK_M)
    # counters: [m_blocks * I_BLOCKS] per (M, I) block, then [m_blocks] per M-block
    final_cnt_ptr = cnt_ptr + m_blocks * I_BLOCKS + pid_m

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_m = offs_m < M
    mask_i = offs_i < I
    acc_g = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
    k_lo = pid_k * K_PER_SPLIT
    for k in range(k_lo, k_lo + K_PER_SPLIT, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        xt = tl.load(
            x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
            mask=mask_m[:, None] & mask_k[None, :], other=0.0,
        )  # [BLOCK_M, BLOCK_K]
        w_ptrs = w13_ptr + offs_i[None, :] * stride_w13 + offs_k[:, None]
        w_mask = mask_i[None, :] & mask_k[:, None]
        wg = tl.load(w_ptrs, mask=w_mask, other=0.0)  # [BLOCK_K, BLOCK_I]
        wu = tl.load(w_ptrs + I * stride_w13, mask=w_mask, other=0.0)
        acc_g = tl.dot(xt, wg, acc_g, input_precision=DOT_PRECISION)
        acc_u = tl.dot(xt, wu, acc_u, input_precision=DOT_PRECISION)

    if not USE_GU_WS:
        h = acc_g * tl.sigmoid(acc_g) * acc_u
        _down_proj(h, w2_ptr, out_ptr, out_ws_ptr, final_cnt_ptr, offs_m, mask_m, offs_i,
                   mask_i, H, stride_w2, stride_om, I_BLOCKS, BLOCK_M, BLOCK_N, USE_OUT_WS,
                   DOT_PRECISION)
    else:
        mask_mi = mask_m[:, None] & mask_i[None, :]
        gu_ptrs = gu_ws_ptr + offs_m[:, None] * (2 * I) + offs_i[None, :]
        tl.atomic_add(gu_ptrs, acc_g, mask=mask_mi, sem="relaxed")
        tl.atomic_add(gu_ptrs + I, acc_u, mask=mask_mi, sem="relaxed")
        tl.debug_barrier()
        done = tl.atomic_add(cnt_ptr + pid_mi, 1, sem="acq_rel")
        if done == K_SPLITS - 1:  # last K-split of this (M, I) block
            g = tl.load(gu_ptrs, mask=mask_mi, other=0.0, cache_modifier=".cg")
            u = tl.load(gu_ptrs + I, mask=mask_mi, other=0.0, cache_modifier=".cg")
            zero = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
            tl.store(gu_ptrs, zero, mask=mask_mi)
            tl.store(gu_ptrs + I, zero, mask=mask_mi)
            tl.store(cnt_ptr + pid_mi, 0)
            h = g * tl.sigmoid(g) * u
            _down_proj(h, w2_ptr, out_ptr, out_ws_ptr, final_cnt_ptr, offs_m, mask_m, offs_i,
                       mask_i, H, stride_w2, stride_om, I_BLOCKS, BLOCK_M, BLOCK_N,
                       USE_OUT_WS, DOT_PRECISION)


@triton.jit
def _grouped_pid(pid, num_pid_m, num_pid_n, GROUP_M: tl.constexpr):
    # tutorial 03's grouped ordering: neighbouring programs share A rows in L2
    num_pid_in_group = GROUP_M * num_pid_n
    group_id = pid // num_pid_in_group
    first_pid_m = group_id * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    return pid_m, pid_n


@triton.jit
def gemm1_swiglu_kernel(
    x_ptr, w13_ptr, h_ptr, M, H, I,
    stride_xm, stride_w13, stride_hm,
    BLOCK_M: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    # h[M, I] = silu(x @ w13[:I]^T) * (x @ w13[I:]^T); grid: (cdiv(M,BM) * cdiv(I,BI),)
    pid_m, pid_i = _grouped_pid(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(I, BLOCK_I),
                                GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_i = pid_i * BLOCK_I + tl.arange(0, BLOCK_I)
    mask_m = offs_m < M
    mask_i = offs_i < I
    acc_g = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
    acc_u = tl.zeros((BLOCK_M, BLOCK_I), tl.float32)
    for k in range(0, H, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < H
        xt = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :],
                     mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        w_ptrs = w13_ptr + offs_i[None, :] * stride_w13 + offs_k[:, None]
        w_mask = mask_i[None, :] & mask_k[:, None]
        wg = tl.load(w_ptrs, mask=w_mask, other=0.0)
        wu = tl.load(w_ptrs + I * stride_w13, mask=w_mask, other=0.0)
        acc_g = tl.dot(xt, wg, acc_g, input_precision=DOT_PRECISION)
        acc_u = tl.dot(xt, wu, acc_u, input_precision=DOT_PRECISION)
    h = acc_g * tl.sigmoid(acc_g) * acc_u
    tl.store(h_ptr + offs_m[:, None] * stride_hm + offs_i[None, :],
             h.to(h_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_i[None, :])


@triton.jit
def gemm2_kernel(
    h_ptr, w2_ptr, out_ptr, M, H, I,
    stride_hm, stride_w2, stride_om,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, DOT_PRECISION: tl.constexpr,
):
    # out[M, H] = h[M, I] @ w2[H, I]^T; grid: (cdiv(M,BM) * cdiv(H,BN),)
    pid_m, pid_n = _grouped_pid(tl.program_id(0), tl.cdiv(M, BLOCK_M), tl.cdiv(H, BLOCK_N),
                                GROUP_M)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_m = offs_m < M
    mask_n = offs_n < H
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for k in range(0, I, BLOCK_K):
        offs_k = k + tl.arange(0, BLOCK_K)
        mask_k = offs_k < I
        a = tl.load(h_ptr + offs_m[:, None] * stride_hm + offs_k[None, :],
                    mask=mask_m[:, None] & mask_k[None, :], other=0.0)
        b = tl.load(w2_ptr + offs_n[None, :] * stride_w2 + offs_k[:, None],
                    mask=mask_n[None, :] & mask_k[:, None], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
    tl.store(out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
             acc.to(out_ptr.dtype.element_ty), mask=mask_m[:, None] & mask_n[None, :])
