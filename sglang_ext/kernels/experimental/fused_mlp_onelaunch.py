"""v4: the small-M fused SwiGLU MLP shard as ONE Triton launch (experimental, off by default).

Selected only by ``MlpLaunchConfig(one_launch=True)`` (an explicit config, or a table entry
once it is GPU-validated for that shape); v2's two launches stay the default and the CUDA
one-launch kernel (``kernels/cuda_onelaunch.py``) is the production small-M path.
:func:`fused_swiglu_mlp_one_launch` is the entry point with this kernel's own knobs: the
counter buffer (``sync``) and ``poison_partials`` (tests).

One grid of ``P1 + P2`` programs.  Each program first takes a *ticket* (relaxed
``atomic_add`` on a counter), so roles follow the order in which programs actually start,
not their program ids:

* tickets ``0 .. P1-1`` (phase 1): tile (M-block, I-block, K-split over H), compute the fp32
  partial gate/up sums, write them to ``p[k, M, 2I]`` with **plain stores** (as v2's GEMM1;
  no data atomics, unlike the failed v1), then a CTA barrier and one
  ``atomic_add(done, 1, sem="release", scope="gpu")``.
* tickets ``P1 .. P1+P2-1`` (phase 2): tile (M-block, H-block).  Spin on
  ``atomic_add(done, 0, sem="acquire", scope="gpu")`` until ``done == P1``, CTA barrier,
  then read the partials with ``cache_modifier=".cg"`` (L2, never a stale L1 line), sum
  them, apply SwiGLU and ``out = h W2^T`` (as v2's GEMM2).

No deadlock: a phase-2 program waits only on programs holding smaller tickets, which are
already running and never wait themselves (the decoupled look-back argument of CUB's
single-pass scan).  Under ``TRITON_INTERPRET=1`` programs run one after another in id order,
so tickets equal ids and the waits find ``done == P1`` at once.

Reset: the last phase-2 program to finish (an ``acq_rel`` finish counter) sets the three
counters back to 0 with atomic exchanges, so the next call on the stream (and each CUDA-graph
replay) starts clean.  Counters: an int32[4] buffer the caller owns (:func:`sync_buffer`,
zeroed once, one per stream, never shared by concurrent launches); without one each call
makes a zeroed buffer (one extra memset launch).  ``p`` is never read where it was not written in the same call (masks on M),
so it needs no initialisation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..fused_mlp_configs import MlpLaunchConfig
from ..fused_mlp_kernels import gemm1_tile

__all__ = [
    "fused_mlp_one_launch_kernel",
    "fused_swiglu_mlp_one_launch",
    "launch_one",
    "one_launch_config",
    "sync_buffer",
]


@triton.jit
def fused_mlp_one_launch_kernel(
    x_ptr,
    w13_ptr,
    w2_ptr,
    out_ptr,
    p_ptr,
    sync_ptr,
    M,
    H,
    I,  # noqa: E741
    K_PER_SPLIT,
    K_SPLITS,
    P1,
    P2,
    stride_xm,
    stride_w13,
    stride_w2,
    stride_om,
    BLOCK_M: tl.constexpr,
    BLOCK_I: tl.constexpr,
    BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K2: tl.constexpr,
    DOT_PRECISION: tl.constexpr,
):
    ticket = tl.atomic_add(sync_ptr, 1, sem="relaxed", scope="gpu")
    i_blocks = tl.cdiv(I, BLOCK_I)
    n_blocks = tl.cdiv(H, BLOCK_N)
    if ticket < P1:
        # ---- phase 1: partial gate/up sums over one K-split of H -------------------------
        pid_k = ticket % K_SPLITS
        rest = ticket // K_SPLITS
        pid_i = rest % i_blocks
        pid_m = rest // i_blocks
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
        p_ptrs = p_ptr + pid_k * M * 2 * I + offs_m[:, None] * (2 * I) + offs_i[None, :]
        tl.store(p_ptrs, acc_g, mask=mask_mi)
        tl.store(p_ptrs + I, acc_u, mask=mask_mi)
        # every thread's stores are issued before the one release below publishes them
        tl.debug_barrier()
        tl.atomic_add(sync_ptr + 1, 1, sem="release", scope="gpu")
    else:
        # ---- phase 2: out tile = swiglu(sum_k p[k]) @ W2^T ---------------------------------
        t2 = ticket - P1
        pid_n = t2 % n_blocks
        pid_m = t2 // n_blocks
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        mask_m = offs_m < M
        mask_n = offs_n < H
        done = tl.atomic_add(sync_ptr + 1, 0, sem="acquire", scope="gpu")
        while done < P1:
            done = tl.atomic_add(sync_ptr + 1, 0, sem="acquire", scope="gpu")
        tl.debug_barrier()
        acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
        for k in range(0, I, BLOCK_K2):
            offs_k = k + tl.arange(0, BLOCK_K2)
            mask_k = offs_k < I
            a_mask = mask_m[:, None] & mask_k[None, :]
            g = tl.zeros((BLOCK_M, BLOCK_K2), tl.float32)
            u = tl.zeros((BLOCK_M, BLOCK_K2), tl.float32)
            p_ptrs = p_ptr + offs_m[:, None] * (2 * I) + offs_k[None, :]
            for s in range(0, K_SPLITS):
                g += tl.load(p_ptrs + s * M * 2 * I, mask=a_mask, other=0.0, cache_modifier=".cg")
                u += tl.load(
                    p_ptrs + s * M * 2 * I + I, mask=a_mask, other=0.0, cache_modifier=".cg"
                )
            a = (g * tl.sigmoid(g) * u).to(w2_ptr.dtype.element_ty)
            b = tl.load(
                w2_ptr + offs_n[None, :] * stride_w2 + offs_k[:, None],
                mask=mask_n[None, :] & mask_k[:, None],
                other=0.0,
            )  # [BK2, BN]
            acc = tl.dot(a, b, acc, input_precision=DOT_PRECISION)
        tl.store(
            out_ptr + offs_m[:, None] * stride_om + offs_n[None, :],
            acc.to(out_ptr.dtype.element_ty),
            mask=mask_m[:, None] & mask_n[None, :],
        )
        # the last program out resets the counters for the next call
        fin = tl.atomic_add(sync_ptr + 2, 1, sem="acq_rel", scope="gpu")
        if fin == P2 - 1:
            tl.atomic_xchg(sync_ptr, 0, sem="relaxed", scope="gpu")
            tl.atomic_xchg(sync_ptr + 1, 0, sem="relaxed", scope="gpu")
            tl.atomic_xchg(sync_ptr + 2, 0, sem="release", scope="gpu")


def sync_buffer(device: torch.device | str) -> torch.Tensor:
    """A zeroed int32[4] counter buffer (ticket, phase-1 done, phase-2 finished, pad) for
    :func:`launch_one`; every call leaves it zero again.  One per stream: two launches in
    flight at once must not share one."""
    return torch.zeros(4, dtype=torch.int32, device=device)


def one_launch_config(m: int, hidden: int, inter: int, num_sms: int = 132) -> MlpLaunchConfig:
    """Heuristic v4 config: phase 1 fills about one program per SM."""
    block_m = min(64, max(16, triton.next_power_of_2(m)))
    block_i = 32 if inter >= 32 else 16
    block_k = 128 if hidden >= 128 else max(16, triton.next_power_of_2(hidden))
    tiles = triton.cdiv(m, block_m) * triton.cdiv(inter, block_i)
    k_splits = max(1, min(triton.cdiv(hidden, block_k), num_sms // tiles, 32))
    return MlpLaunchConfig(
        block_m=block_m,
        block_i=block_i,
        block_k=block_k,
        block_n=64,
        block_k2=min(128, max(16, triton.next_power_of_2(inter))),
        k_splits=k_splits,
        num_warps=4,
        num_stages=2,
        one_launch=True,
    )


def launch_one(
    x,
    w13,
    w2,
    out,
    cfg: MlpLaunchConfig,
    precision: str,
    *,
    sync: torch.Tensor | None = None,
    poison_partials: bool = False,
) -> None:
    """Launch v4 (shapes already checked by ``fused_swiglu_mlp``).

    ``sync``: the counter buffer (:func:`sync_buffer`), made per call if None.
    ``poison_partials``: fill the partials with NaN first (tests: any unwritten read shows).
    """
    m, hidden = x.shape
    inter = w13.shape[0] // 2
    k_blocks = triton.cdiv(hidden, cfg.block_k)
    k_per_split = triton.cdiv(k_blocks, min(cfg.k_splits, k_blocks)) * cfg.block_k
    k_splits = triton.cdiv(hidden, k_per_split)  # every split gets >= 1 K-block
    m_blocks = triton.cdiv(m, cfg.block_m)
    p1 = m_blocks * triton.cdiv(inter, cfg.block_i) * k_splits
    p2 = m_blocks * triton.cdiv(hidden, cfg.block_n)
    shape = (k_splits, m, 2 * inter)
    if poison_partials:
        p = torch.full(shape, float("nan"), dtype=torch.float32, device=x.device)
    else:
        p = torch.empty(shape, dtype=torch.float32, device=x.device)
    if sync is None:
        sync = sync_buffer(x.device)
    if sync.dtype != torch.int32 or sync.numel() < 4 or sync.device != x.device:
        raise ValueError(
            f"sync must be an int32[4] on {x.device} (sync_buffer()), got "
            f"{sync.dtype}[{sync.numel()}] on {sync.device}"
        )
    block_k2 = min(cfg.block_k2, max(16, triton.next_power_of_2(inter)))
    fused_mlp_one_launch_kernel[(p1 + p2,)](
        x,
        w13,
        w2,
        out,
        p,
        sync,
        m,
        hidden,
        inter,
        k_per_split,
        k_splits,
        p1,
        p2,
        x.stride(0),
        w13.stride(0),
        w2.stride(0),
        out.stride(0),
        BLOCK_M=cfg.block_m,
        BLOCK_I=cfg.block_i,
        BLOCK_K=cfg.block_k,
        BLOCK_N=cfg.block_n,
        BLOCK_K2=block_k2,
        DOT_PRECISION=precision,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )


def fused_swiglu_mlp_one_launch(
    x: torch.Tensor,
    w13: torch.Tensor,
    w2: torch.Tensor,
    *,
    out: torch.Tensor | None = None,
    config: MlpLaunchConfig | None = None,
    sync: torch.Tensor | None = None,
    poison_partials: bool = False,
) -> torch.Tensor:
    """``fused_swiglu_mlp`` through v4: same checks; ``config`` defaults to
    :func:`one_launch_config` (``one_launch`` is implied)."""
    from ..fused_mlp import _check, _device_facts

    _check(x, w13, w2, out)
    m, hidden = x.shape
    inter = w13.shape[0] // 2
    if out is None:
        out = torch.empty((m, hidden), dtype=x.dtype, device=x.device)
    if m == 0:
        return out
    cfg = config or one_launch_config(m, hidden, inter, _device_facts(x.device)[1])
    precision = "ieee" if x.dtype == torch.float32 else "tf32"
    launch_one(x, w13, w2, out, cfg, precision, sync=sync, poison_partials=poison_partials)
    return out
