"""A three-launch Triton ``moe_align_block_size`` (the stand-in's default on CUDA).

sglang 0.4.7's own Triton fallback (``moe_align_block_size_triton``) runs one program per
expert that walks its share of tokens serially and takes the token count as a
``tl.constexpr`` (a recompile for every new batch size).  This version works in chunks:

1. ``_count_kernel`` (grid over token chunks): each program fills its share of
   ``sorted_token_ids`` with the padding value ``numel`` and adds its per-expert token counts
   (a one-hot sum) into ``counts`` with one atomic per expert.
2. ``_offsets_kernel`` (one program): pads each count to a ``block_size`` multiple, takes the
   prefix sum, writes ``num_tokens_post_pad``, ``cumsum``, every block's expert id, and
   ``cursor[e]`` = start of expert ``e``'s slots.
3. ``_scatter_kernel`` (grid over token chunks): each program reserves a contiguous run of
   slots per expert with one ``atomic_add`` on ``cursor`` and writes its tokens there in
   order.  Runs from different programs land in whatever order the atomics resolve, as in
   the CUDA op; the fused-MoE GEMM computes every row on its own, so results do not depend
   on it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["moe_align_block_size_fused"]


@triton.jit
def _count_kernel(
    topk_ids_ptr,
    sorted_ptr,
    counts_ptr,
    numel,
    num_experts,
    cap,
    fill_per_prog,
    E_PAD: tl.constexpr,
    CHUNK: tl.constexpr,
    FILL: tl.constexpr,
):
    pid = tl.program_id(0)
    lo = pid * fill_per_prog
    for start in range(lo, lo + fill_per_prog, FILL):
        offs = start + tl.arange(0, FILL)
        tl.store(
            sorted_ptr + offs,
            tl.full((FILL,), 0, tl.int32) + numel,
            mask=(offs < cap) & (offs < lo + fill_per_prog),
        )
    offs = pid * CHUNK + tl.arange(0, CHUNK)
    ids = tl.load(topk_ids_ptr + offs, mask=offs < numel, other=-1)
    experts = tl.arange(0, E_PAD)
    onehot = (ids[:, None] == experts[None, :]).to(tl.int32)  # [CHUNK, E_PAD]; -1 matches none
    cnt = tl.sum(onehot, axis=0)  # [E_PAD]
    tl.atomic_add(counts_ptr + experts, cnt, mask=(experts < num_experts) & (cnt > 0))


@triton.jit
def _offsets_kernel(
    counts_ptr,
    cursor_ptr,
    cumsum_ptr,
    expert_ids_ptr,
    npost_ptr,
    num_experts,
    block_size,
    num_blocks,
    E_PAD: tl.constexpr,
    BLK: tl.constexpr,
):
    experts = tl.arange(0, E_PAD)
    emask = experts < num_experts
    cnt = tl.load(counts_ptr + experts, mask=emask, other=0)
    padded = (cnt + block_size - 1) // block_size * block_size
    incl = tl.cumsum(padded, axis=0)  # [E_PAD]; lanes >= E repeat the total
    start = incl - padded
    total = tl.sum(padded, axis=0)
    tl.store(cursor_ptr + experts, start, mask=emask)
    tl.store(cumsum_ptr + experts, start, mask=emask)
    tl.store(cumsum_ptr + num_experts, total)
    tl.store(npost_ptr, total)
    for b0 in range(0, num_blocks, BLK):
        blocks = b0 + tl.arange(0, BLK)
        bstart = blocks * block_size
        # expert of a block = number of experts whose padded range ends at or before it
        ends_before = ((incl[None, :] <= bstart[:, None]) & emask[None, :]).to(tl.int32)
        eid = tl.sum(ends_before, axis=1)
        eid = tl.where(bstart < total, eid, -1)
        tl.store(expert_ids_ptr + blocks, eid, mask=blocks < num_blocks)


@triton.jit
def _scatter_kernel(
    topk_ids_ptr,
    sorted_ptr,
    cursor_ptr,
    numel,
    num_experts,
    E_PAD: tl.constexpr,
    CHUNK: tl.constexpr,
):
    pid = tl.program_id(0)
    offs = pid * CHUNK + tl.arange(0, CHUNK)
    ids = tl.load(topk_ids_ptr + offs, mask=offs < numel, other=-1)
    experts = tl.arange(0, E_PAD)
    onehot = (ids[:, None] == experts[None, :]).to(tl.int32)  # [CHUNK, E_PAD]
    cnt = tl.sum(onehot, axis=0)
    base = tl.atomic_add(cursor_ptr + experts, cnt, mask=experts < num_experts)  # old values
    base = tl.where(experts < num_experts, base, 0)
    rank = tl.cumsum(onehot, axis=0) - onehot  # rank of each token among its chunk's expert
    dest = tl.sum(onehot * (rank + base[None, :]), axis=1)  # [CHUNK]
    valid = (offs < numel) & (ids >= 0) & (ids < num_experts)
    tl.store(sorted_ptr + dest, offs.to(tl.int32), mask=valid)


def moe_align_block_size_fused(
    topk_ids: torch.Tensor,
    num_experts: int,
    block_size: int,
    sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor,
    num_tokens_post_pad: torch.Tensor,
    cumsum_buffer: torch.Tensor | None = None,
) -> None:
    """Same contract as ``moe.moe_align_block_size``; int32 buffers, contiguous ``topk_ids``."""
    for name, t in [
        ("sorted_token_ids", sorted_token_ids),
        ("experts_ids", experts_ids),
        ("num_tokens_post_pad", num_tokens_post_pad),
    ]:
        if t.dtype != torch.int32 or not t.is_contiguous():
            raise ValueError(f"moe_align_block_size: {name} must be contiguous int32")
    ids = topk_ids.reshape(-1)
    if not ids.is_contiguous():
        ids = ids.contiguous()
    numel, cap, dev = ids.numel(), sorted_token_ids.numel(), ids.device
    e_pad = max(16, triton.next_power_of_2(num_experts))
    chunk = max(16, min(1024, 8192 // e_pad))
    grid = max(1, triton.cdiv(numel, chunk))
    scratch = torch.zeros(2 * num_experts, dtype=torch.int32, device=dev)  # counts | cursor
    counts, cursor = scratch[:num_experts], scratch[num_experts:]
    if cumsum_buffer is None or cumsum_buffer.dtype != torch.int32:
        cumsum_buffer = torch.empty(num_experts + 1, dtype=torch.int32, device=dev)
    _count_kernel[(grid,)](
        ids,
        sorted_token_ids,
        counts,
        numel,
        num_experts,
        cap,
        triton.cdiv(cap, grid),
        E_PAD=e_pad,
        CHUNK=chunk,
        FILL=1024,
    )
    _offsets_kernel[(1,)](
        counts,
        cursor,
        cumsum_buffer,
        experts_ids,
        num_tokens_post_pad,
        num_experts,
        block_size,
        experts_ids.numel(),
        E_PAD=e_pad,
        BLK=max(16, min(256, 16384 // e_pad)),
    )
    _scatter_kernel[(grid,)](
        ids, sorted_token_ids, cursor, numel, num_experts, E_PAD=e_pad, CHUNK=chunk
    )
