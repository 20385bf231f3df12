"""Where a decode step's bookkeeping runs as one launch each (patch 0025's question).

``ScheduleBatch.prepare_for_decode`` and ``CudaGraphRunner.replay_prepare`` spend up to
eleven tiny launches and their Python on the batch's integers before each decode graph
replay, while the GPU waits.  Patch 0025 calls :func:`advance_decode_batch` and
:func:`copy_graph_inputs` first; where they apply they do the same work with one launch each
(``sglang_ext.kernels.decode_inputs``, bit-identical integers) and return True, else they
do nothing and return False and sglang's own lines run.

They apply on CUDA with ``fused_inputs`` on in the ranks' config (``SGLANG_EXT_FUSED_INPUTS=0``
turns it off): for the batch, a KV page size of 1, no encoder-decoder model and sglang's own
``ReqToTokenPool`` (int32 table); for the graph, one token per request (plain decode, no
speculative decoding) and sglang's 1-D integer static inputs.  The table and the buffers are
checked once, then every step launches without checks.  Checked against HF on the GPU by
``tests/gpu_e2e``.
"""

from __future__ import annotations

import logging
from typing import Any

from sglang_ext.kernels import decode_inputs
from sglang_ext.serving.config import rank_config

__all__ = ["advance_decode_batch", "copy_graph_inputs"]

logger = logging.getLogger(__name__)
_POOL_OK = "_sglang_ext_fused_inputs"
_RUNNER_BUFFERS = "_sglang_ext_graph_inputs"


def _pool_applies(pool: Any) -> bool:
    ok = pool.__dict__.get(_POOL_OK)
    if ok is None:
        from sglang.srt.mem_cache.memory_pool import ReqToTokenPool

        ok = type(pool).write is ReqToTokenPool.write
        try:
            decode_inputs.check_table(pool.req_to_token)
        except ValueError:
            ok = False
        pool.__dict__[_POOL_OK] = ok
        logger.info("sglang-ext: prepare_for_decode's bookkeeping %s", "in one launch" if ok
                    else "as sglang's ops (not sglang's int32 ReqToTokenPool)")  # fmt: skip
    return ok


def advance_decode_batch(batch: Any) -> bool:
    """``prepare_for_decode``'s bookkeeping after its ``input_ids`` update (new KV slots, the
    ``req_to_token`` write, ``seq_lens + 1``) in one launch; False, having done nothing,
    where it does not apply."""
    seq_lens = batch.seq_lens
    if not (
        seq_lens.is_cuda
        and rank_config().fused_inputs
        and batch.token_to_kv_pool_allocator.page_size == 1
        and not batch.model_config.is_encoder_decoder
        and _pool_applies(batch.req_to_token_pool)
    ):
        return False
    bs = len(batch.reqs)
    batch.seq_lens_sum += bs
    batch.out_cache_loc = batch.alloc_token_slots(bs)  # reads no seq_lens: order kept free
    batch.seq_lens = decode_inputs.advance_decode(
        batch.req_to_token_pool.req_to_token,
        batch.req_pool_indices,
        seq_lens,
        batch.out_cache_loc,
        in_place=not batch.enable_overlap,  # the overlap scheduler's older step may read it
        check=False,
    )
    return True


def _runner_buffers(runner: Any) -> tuple | None:
    buffers = runner.__dict__.get(_RUNNER_BUFFERS)
    if buffers is None:
        buffers = (runner.input_ids, runner.req_pool_indices, runner.seq_lens,
                   runner.out_cache_loc, runner.positions)  # fmt: skip
        try:
            decode_inputs.check_vectors("graph buffers", buffers, runner.max_bs)
        except ValueError:
            buffers = ()
        runner.__dict__[_RUNNER_BUFFERS] = buffers
        logger.info("sglang-ext: the decode graphs' input copies %s", "in one launch" if buffers
                    else "as sglang's copies (graph buffers not 1-D integer)")  # fmt: skip
    return buffers or None


def copy_graph_inputs(runner: Any, forward_batch: Any, raw_bs: int, bs: int) -> bool:
    """``replay_prepare``'s padding and copies of the batch into the graph's static inputs in
    one launch; False, having done nothing, where it does not apply."""
    ids = forward_batch.input_ids
    if not (
        ids.is_cuda
        and rank_config().fused_inputs
        and runner.num_tokens_per_bs == 1
        and ids.shape[0] == raw_bs
        and forward_batch.positions is not None
    ):
        return False
    buffers = _runner_buffers(runner)
    if buffers is None:
        return False
    batch = (ids, forward_batch.req_pool_indices, forward_batch.seq_lens,
             forward_batch.out_cache_loc, forward_batch.positions)  # fmt: skip
    decode_inputs.copy_graph_inputs(buffers, batch, bs, check=False)
    return True
