"""What sglang's decode CUDA graphs compute inside themselves (patch 0021's question).

Before every graph replay sglang 0.4.7 copies the batch into the graph's static inputs and
then, on the host, asks the attention backend for the step's metadata
(``init_forward_metadata_replay_cuda_graph``).  For the Triton backend at decode that is a
``cumsum`` of the sequence lengths into ``kv_indptr``, a Triton kernel that gathers the KV
slots into ``kv_indices`` and another that picks the KV split counts: three launches and
their Python, every step, while the GPU waits for the graph (the host part of the decode
step, ``bench/decode_budget.py``).  All three read only the graph's static inputs
(``req_pool_indices``, ``seq_lens``, padded rows included) and write only the backend's
static buffers, so they can be captured: patch 0021 runs the same call at the head of the
captured function and skips it before the replay.

:func:`metadata_in_graph` says where that holds: the Triton backend itself (not a subclass
or a wrapper), plain decode graphs (no speculative decoding, no sliding window, no DP
attention or SP layernorm, no pipeline stages, no two-batch overlap, no encoder-decoder),
and ``graph_metadata`` on in the ranks' config (``SGLANG_EXT_GRAPH_METADATA=0`` turns it
off).  Anything else keeps sglang's host-side preparation.
"""

from __future__ import annotations

from typing import Any

from sglang_ext.serving.config import rank_config

__all__ = ["metadata_in_graph"]


def metadata_in_graph(runner: Any) -> bool:
    """True if ``runner`` (sglang's ``CudaGraphRunner``, after its attention backend set up
    the graph state) may capture the attention backend's decode metadata in its graphs."""
    if not rank_config().graph_metadata:
        return False
    from sglang.srt.layers.attention.triton_backend import TritonAttnBackend
    from sglang.srt.model_executor.forward_batch_info import ForwardMode

    mr = runner.model_runner
    backend = mr.attn_backend
    return (
        type(backend) is TritonAttnBackend
        and runner.capture_forward_mode == ForwardMode.DECODE
        and mr.spec_algorithm.is_none()
        and not (getattr(backend, "sliding_window_size", None) or 0) > 0
        and not runner.enable_dp_attention
        and not runner.enable_sp_layernorm
        and runner.pp_size == 1
        and not runner.enable_two_batch_overlap
        and not runner.is_encoder_decoder
    )
