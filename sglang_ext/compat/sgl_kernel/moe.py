"""Stand-ins for sgl_kernel 0.1.7's MoE routing ops: ``topk_softmax``, ``moe_align_block_size``.

Call sites in sglang 0.4.7: ``layers/moe/topk.py`` (``fused_topk``) and
``layers/moe/fused_moe_triton/fused_moe.py`` (``moe_align_block_size``, which pre-fills
``sorted_token_ids`` with ``topk_ids.numel()`` and passes two scratch buffers).

``moe_align_block_size`` has three implementations, picked by ``SGLANG_EXT_STANDIN_MOE_ALIGN``:

* ``auto`` (default): ``triton`` for CUDA tensors, ``torch`` otherwise.
* ``triton``: ``moe_align_triton.moe_align_block_size_fused``, three chunked launches with
  no host synchronisation (CUDA-graph safe) and no recompiles per token count.
* ``torch``: a stable argsort plus scatters; also graph safe, but ~40 small kernels.
* ``sglang``: delegates to sglang's own ``moe_align_block_size_triton``.  Its kernels take
  ``numel`` as ``tl.constexpr``, so every new token count compiles anew, and at E=1 one
  program walks all tokens serially.  (sglang's ``ENABLE_MOE_ALIGN_BLOCK_SIZE_TRITON=1``
  reaches the same kernels without the stand-in.)
"""

from __future__ import annotations

import os

import torch

from ._impl import use_triton

__all__ = ["topk_softmax", "moe_align_block_size", "ALIGN_IMPL_ENV"]

ALIGN_IMPL_ENV = "SGLANG_EXT_STANDIN_MOE_ALIGN"


def topk_softmax(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    token_expert_indices: torch.Tensor,
    gating_output: torch.Tensor,
) -> None:
    """Softmax over experts, then top-k, written in place into the three ``[M, k]`` outputs.

    ``topk_weights`` gets the (not renormalised) softmax probabilities, largest first;
    ``topk_ids`` the expert ids; ``token_expert_indices[m, j] = j * M + m`` (the row of the
    token-major ``[k * M]`` layout, as in the CUDA kernel).
    """
    m, k = topk_weights.shape
    if gating_output.dim() != 2 or gating_output.shape[0] != m:
        raise ValueError(
            f"sgl_kernel.topk_softmax: gating_output must be [M={m}, E], got "
            f"{tuple(gating_output.shape)}"
        )
    if topk_ids.shape != (m, k) or token_expert_indices.shape != (m, k):
        raise ValueError(
            f"sgl_kernel.topk_softmax: outputs must all be [M, k]=[{m}, {k}]; got topk_ids "
            f"{tuple(topk_ids.shape)}, token_expert_indices {tuple(token_expert_indices.shape)}"
        )
    n_exp = gating_output.shape[1]
    if k > n_exp:
        raise ValueError(f"sgl_kernel.topk_softmax: top-k {k} > number of experts {n_exp}")
    if use_triton(gating_output):
        from sglang_ext.kernels.topk import topk_softmax as impl
    else:
        from sglang_ext.kernels.topk_ref import topk_softmax_ref as impl
    impl(topk_weights, topk_ids, token_expert_indices, gating_output)


def moe_align_block_size(
    topk_ids: torch.Tensor,
    num_experts: int,
    block_size: int,
    sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor,
    num_tokens_post_pad: torch.Tensor,
    token_cnts_buffer: torch.Tensor | None = None,
    cumsum_buffer: torch.Tensor | None = None,
    pad_sorted_token_ids: bool = False,
) -> None:
    """Group the flattened ``topk_ids`` by expert, each group padded to a ``block_size`` multiple.

    Writes in place: ``sorted_token_ids`` (flat indices into ``topk_ids``, grouped by expert in
    ascending expert order, padding slots = ``topk_ids.numel()``); ``experts_ids[b]`` (expert
    of block ``b``; -1 for blocks at or past the padded total); ``num_tokens_post_pad[0]``
    (the padded total); ``cumsum_buffer`` (if given, the ``E + 1`` exclusive prefix sums of
    padded counts).  Ids outside ``[0, num_experts)`` (sglang marks padded tokens with -1)
    are left out.  ``token_cnts_buffer`` is the CUDA op's scratch; it is not needed here.
    """
    numel = topk_ids.numel()
    if sorted_token_ids.numel() < numel + num_experts * (block_size - 1):
        raise ValueError(
            f"sgl_kernel.moe_align_block_size: sorted_token_ids has {sorted_token_ids.numel()} "
            f"slots, needs topk_ids.numel() + E * (block_size - 1) = "
            f"{numel + num_experts * (block_size - 1)}"
        )
    impl = os.environ.get(ALIGN_IMPL_ENV, "auto")
    if impl == "auto":
        impl = "triton" if topk_ids.is_cuda else "torch"
    if impl == "triton":
        from .moe_align_triton import moe_align_block_size_fused

        moe_align_block_size_fused(
            topk_ids,
            num_experts,
            block_size,
            sorted_token_ids,
            experts_ids,
            num_tokens_post_pad,
            cumsum_buffer,
        )
    elif impl == "sglang":
        _align_sglang(
            topk_ids, num_experts, block_size, sorted_token_ids, experts_ids, num_tokens_post_pad
        )
    elif impl == "torch":
        _align_torch(
            topk_ids,
            num_experts,
            block_size,
            sorted_token_ids,
            experts_ids,
            num_tokens_post_pad,
            cumsum_buffer,
        )
    else:
        raise ValueError(
            f"{ALIGN_IMPL_ENV}={impl!r}: expected 'auto', 'triton', 'torch' or 'sglang'"
        )


def _align_torch(
    topk_ids: torch.Tensor,
    n_exp: int,
    bs: int,
    sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor,
    num_tokens_post_pad: torch.Tensor,
    cumsum_buffer: torch.Tensor | None,
) -> None:
    dev = topk_ids.device
    flat = topk_ids.reshape(-1).long()  # [N]
    n = flat.numel()
    valid = (flat >= 0) & (flat < n_exp)
    key = torch.where(valid, flat, torch.full_like(flat, n_exp))  # invalid ids -> bucket E
    counts = torch.zeros(n_exp + 1, dtype=torch.int64, device=dev)
    counts.scatter_add_(0, key, torch.ones_like(key))  # [E + 1]
    padded = (counts[:n_exp] + bs - 1) // bs * bs  # [E]
    pad_start = torch.zeros(n_exp + 1, dtype=torch.int64, device=dev)
    pad_start[1:] = torch.cumsum(padded, 0)  # [E + 1]; pad_start[E] = padded total
    cnt_start = torch.zeros(n_exp + 2, dtype=torch.int64, device=dev)
    cnt_start[1:] = torch.cumsum(counts, 0)
    order = torch.argsort(key, stable=True)  # [N] flat token indices, grouped by expert
    skey = key[order]
    rank = torch.arange(n, device=dev) - cnt_start[skey]  # position within its expert
    cap = sorted_token_ids.numel()
    # invalid ids go to a dump slot past the end of the real buffer
    dest = torch.where(
        skey < n_exp, pad_start[skey.clamp(max=n_exp - 1)] + rank, torch.full_like(rank, cap)
    )
    staged = torch.full((cap + 1,), n, dtype=sorted_token_ids.dtype, device=dev)
    staged.scatter_(0, dest, order.to(sorted_token_ids.dtype))
    sorted_token_ids.copy_(staged[:cap])
    block_start = torch.arange(experts_ids.numel(), device=dev, dtype=torch.int64) * bs
    blk_exp = torch.searchsorted(pad_start[1:].contiguous(), block_start, right=True)
    experts_ids.copy_(torch.where(blk_exp < n_exp, blk_exp, torch.full_like(blk_exp, -1)))
    num_tokens_post_pad.copy_(pad_start[n_exp:].to(num_tokens_post_pad.dtype))
    if cumsum_buffer is not None:
        cumsum_buffer.copy_(pad_start.to(cumsum_buffer.dtype))


def _align_sglang(
    topk_ids: torch.Tensor,
    n_exp: int,
    bs: int,
    sorted_token_ids: torch.Tensor,
    experts_ids: torch.Tensor,
    num_tokens_post_pad: torch.Tensor,
) -> None:
    from sglang.srt.layers.moe.fused_moe_triton.fused_moe import moe_align_block_size_triton

    # The Triton kernels write real token slots only; padding must already hold numel.
    sorted_token_ids.fill_(topk_ids.numel())
    moe_align_block_size_triton(
        topk_ids, n_exp, bs, sorted_token_ids, experts_ids, num_tokens_post_pad
    )
