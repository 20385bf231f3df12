"""Plain-torch references of ``decode_inputs``: sglang 0.4.7's own ops, as it runs them.

:func:`advance_decode_ref` is the bookkeeping of ``ScheduleBatch.prepare_for_decode``
(``managers/schedule_batch.py``, page size 1, no encoder): each request's new token goes to
KV slot ``out_cache_loc[i]``, recorded at position ``seq_lens[i]`` of its row of the
``req_to_token`` table, and its length grows by one.  :func:`copy_graph_inputs_ref` is the
head of ``CudaGraphRunner.replay_prepare`` (``model_executor/cuda_graph_runner.py``): rows
past the batch pad to length 1 and KV slot 0, then the batch is copied into the graph's
static inputs.
"""

from __future__ import annotations

import torch

__all__ = ["advance_decode_ref", "copy_graph_inputs_ref"]


def advance_decode_ref(
    req_to_token: torch.Tensor,
    req_pool_indices: torch.Tensor,
    seq_lens: torch.Tensor,
    out_cache_loc: torch.Tensor,
    *,
    in_place: bool,
) -> torch.Tensor:
    """Write ``req_to_token[req_pool_indices, seq_lens] = out_cache_loc`` and return
    ``seq_lens + 1``: ``seq_lens`` itself when ``in_place`` (sglang without the overlap
    scheduler), else a new tensor (the overlap scheduler's older step may still read it)."""
    locs = seq_lens.clone()
    if in_place:
        seq_lens.add_(1)
        new = seq_lens
    else:
        new = seq_lens + 1
    req_to_token[(req_pool_indices, locs)] = out_cache_loc.to(torch.int32)
    return new


def copy_graph_inputs_ref(
    dst: tuple[torch.Tensor, ...],
    src: tuple[torch.Tensor, ...],
    bs: int,
) -> None:
    """``dst`` and ``src``: (input_ids, req_pool_indices, seq_lens, out_cache_loc, positions),
    ``dst`` the graph's static buffers, ``src`` one decode batch of ``len(src[0])`` tokens;
    ``bs`` the captured batch size it runs as (``>= len(src[0])``)."""
    ids, rpi, seq, loc, pos = dst
    raw_bs = src[0].shape[0]
    if bs != raw_bs:
        seq.fill_(1)
        loc.zero_()
    for d, s in zip(dst, src, strict=True):
        d[:raw_bs].copy_(s)
