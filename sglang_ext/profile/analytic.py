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

All activations are in the model dtype (``dtype_size`` bytes).
"""

from __future__ import annotations

from typing import Any

__all__ = ["expected_collectives"]


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
) -> dict[str, dict[str, int]] | None:
    """{kind: {count, bytes}} per step, or None where no derivation is written (DP attention)."""
    if tp == 1:
        return {}
    if dp_attention:
        return None
    tokens = batch * input_len if phase == "prefill" else batch
    act = tokens * hidden * dtype_size
    v_pad = -(-vocab // 64) * 64
    out: dict[str, Any] = {
        "all_reduce": {"count": 1 + 2 * layers, "bytes": (1 + 2 * layers) * act},
        "all_gather": {"count": 1, "bytes": batch * (v_pad // tp) * dtype_size},
    }
    return out
