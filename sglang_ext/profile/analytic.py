"""The collectives a step of the patched Qwen3-MoE should issue, derived from sglang's code.

For a TP group of ``tp`` > 1 ranks without DP attention (sglang 0.4.7 plus our series),
one forward of ``T`` tokens (prefill: batch x input_len; decode: batch) issues, through
the GroupCoordinator:

- ``VocabParallelEmbedding.forward``: one all_reduce of the embeddings, ``[T, H]``;
- per decoder layer, ``LayerCommunicator.prepare_mlp`` -> ``_gather_hidden_states``: one
  all_reduce of the attention output (``o_proj`` has ``reduce_results=False``), ``[T, H]``;
  and ``Qwen3MoeSparseMoeBlock.forward_normal``: one all_reduce of the expert output,
  ``[T, H]`` (in ``dp`` single-expert mode each rank's output holds its own tokens and
  zeros elsewhere, so this same all_reduce is the token exchange); ``prepare_attn`` and
  ``postprocess_layer`` communicate nothing at full attention TP;
- ``LogitsProcessor._get_logits``: one all_gather of this rank's vocabulary shard of the
  logits of the sampled positions, ``[B, V_pad / tp]`` (``ParallelLMHead`` pads the
  vocabulary to a multiple of 64), in the model dtype;
- the sampler's token all_reduce runs only with a grammar or
  ``SYNC_TOKEN_IDS_ACROSS_TP``: not here.

With ``--enable-dp-attention`` (attention TP = tp / dp_size; here each DP rank runs its own
batch of ``batch`` requests, so the gathered step holds ``G = dp_size x T`` tokens):

- the embedding is built with ``enable_tp=False``: no collective;
- per layer, ``_gather_hidden_states`` with ``local_attn_dp_size != 1`` calls
  ``dp_gather_partial``, an all_reduce of the zero-filled global buffer ``[G, H]``; the MoE
  block all_reduces ``[G, H]`` (the token exchange); ``dp_scatter`` copies locally;
- ``LogitsProcessor``: ``dp_gather_replicate`` all_reduces ``[G_s, H]`` (the sampled
  positions of all DP ranks, ``G_s = dp_size x batch``), then the all_gather of
  ``[G_s, V_pad / tp]`` over the whole TP group.

- ``Scheduler.prepare_dp_attn_batch_raw`` (once per step, before the forward): one
  all_gather, through ``torch.distributed`` on the TP group's CPU group, of this rank's
  6 int64 facts (tokens, can-run-graph, logprob tokens, is-extend, two two-batch-overlap
  fields): 48 bytes.

All activations are in the model dtype (``dtype_size`` bytes).
"""

from __future__ import annotations

from typing import Any

__all__ = ["expected_collectives"]

_DP_INFO_BYTES = 6 * 8  # prepare_dp_attn_batch_raw's local_info: 6 int64


def expected_collectives(
    *,
    hidden: int,
    layers: int,
    vocab: int,
    tp: int,
    batch: int,
    input_len: int,
    phase: str,
    dtype_size: int,
    dp_attention: bool = False,
    dp_size: int = 1,
) -> dict[str, dict[str, int]]:
    """{kind: {count, bytes}} per step (see the module doc for where each comes from)."""
    if tp == 1:
        return {}
    tokens = batch * input_len if phase == "prefill" else batch
    v_pad = -(-vocab // 64) * 64
    if dp_attention:
        g, g_s = dp_size * tokens, dp_size * batch
        ar = 2 * layers * g * hidden * dtype_size + g_s * hidden * dtype_size
        return {
            "all_reduce": {"count": 2 * layers + 1, "bytes": ar},
            "all_gather": {
                "count": 2,
                "bytes": g_s * (v_pad // tp) * dtype_size + _DP_INFO_BYTES,
            },
        }
    act = tokens * hidden * dtype_size
    out: dict[str, Any] = {
        "all_reduce": {"count": 1 + 2 * layers, "bytes": (1 + 2 * layers) * act},
        "all_gather": {"count": 1, "bytes": batch * (v_pad // tp) * dtype_size},
    }
    return out
