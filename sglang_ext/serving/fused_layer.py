"""A Qwen3-MoE decoder layer at decode on one GPU, with its two RMSNorms inside the linears.

sglang's ``Qwen3MoeDecoderLayer.forward`` runs ``input_layernorm``, the attention (qkv_proj,
q/k norm + rope, attention, o_proj), ``post_attention_layernorm`` and the MoE block, each
norm a kernel of its own.  Patch 0023 calls :func:`fused_decoder_layer` first; where it
applies it returns the layer's ``(hidden_states, residual)`` computed with

* ``input_layernorm`` in the qkv projection's prologue (``kernels.norm_gemv``, the launch the
  gemv table gives qkv_proj's weight), then the rest of sglang's attention as its
  ``forward_prepare`` / ``forward_core`` run it (patches 0017/0018/0024 included);
* ``post_attention_layernorm`` and the one expert in ``SingleExpertMoE.forward_normed``.

A part without a launch (``norm_gemv.fused_launch``: none in the gemv table at this batch
size, or one too narrow for the norm to pay) runs sglang's own calls for that part.  It
applies (:func:`applies`) only where the layer's own code is the same computation with no
communication: a CUDA decode batch of one token, one rank (attention TP 1,
no DP attention, MoE TP 1), a one-expert block (``SingleExpertMoE``), an unquantized qkv
projection without bias, sglang's ``RMSNorm`` norms, not under torch.compile, and
``SGLANG_EXT_FUSED_NORM`` not 0.  Anything else, and every CPU run, returns None and the
layer runs as before.  Checked against HF on the GPU by ``tests/gpu_e2e``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

__all__ = ["applies", "fused_decoder_layer"]

logger = logging.getLogger(__name__)
_CACHE_ATTR = "_sglang_ext_fused_layer"
_logged: set[tuple[bool, bool]] = set()  # (qkv fused, MLP fused) combinations logged once


def _log_once(qkv: bool, mlp: bool, m: int) -> None:
    if (qkv, mlp) not in _logged:
        _logged.add((qkv, mlp))
        logger.info("sglang-ext fused decoder layer: input norm %s qkv_proj, post-attention "
                    "norm %s the expert (first at %d tokens)", "inside" if qkv else "before",
                    "inside" if mlp else "before", m)  # fmt: skip


def applies(layer: Any, hidden_states: torch.Tensor, forward_batch: Any) -> bool:
    """Whether :func:`fused_decoder_layer` computes this layer's forward (the batch-dependent
    checks each call, the module's once)."""
    if not (
        hidden_states.is_cuda
        and hidden_states.dim() == 2
        # one token: the CUDA-core launches.  At 8 tokens the tensor-core launches with the
        # norm prologue made the 30B graph 5.42 ms against 2.53 unfused (call 32)
        and hidden_states.shape[0] == 1
        and forward_batch.forward_mode.is_decode()
        and not torch.compiler.is_compiling()
    ):
        return False
    ok = layer.__dict__.get(_CACHE_ATTR)
    if ok is None:
        ok = layer.__dict__[_CACHE_ATTR] = _module_applies(layer)
    return ok


def _module_applies(layer: Any) -> bool:
    from sglang_ext.layers.single_expert_moe import SingleExpertMoE
    from sglang_ext.serving.config import rank_config

    attn, mlp = layer.self_attn, layer.mlp
    experts = getattr(mlp, "experts", None)
    qkv = attn.qkv_proj
    return (
        rank_config().fused_norm
        and layer.attn_tp_size == 1
        and layer.local_dp_size == 1
        and getattr(mlp, "tp_size", None) == 1
        and isinstance(experts, SingleExpertMoE)
        and type(qkv.quant_method).__name__ == "UnquantizedLinearMethod"
        and getattr(qkv, "bias", None) is None
        and type(layer.input_layernorm).__name__ == "RMSNorm"
        and type(layer.post_attention_layernorm).__name__ == "RMSNorm"
    )


def fused_decoder_layer(
    layer: Any,
    positions: torch.Tensor,
    hidden_states: torch.Tensor,
    forward_batch: Any,
    residual: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The layer's ``(hidden_states, residual)`` (see the module docstring), or None: run
    sglang's forward."""
    if not applies(layer, hidden_states, forward_batch):
        return None
    from sglang_ext.kernels.norm_gemv import fused_launch, norm_gemv
    from sglang_ext.serving.qwen3_attention import attend, prepare_attention

    attn, comm = layer.self_attn, layer.layer_communicator
    config = fused_launch(hidden_states, attn.qkv_proj.weight)
    if config is not None:
        ln = layer.input_layernorm
        qkv, residual = norm_gemv(hidden_states, residual, ln.weight, ln.variance_epsilon,
                                  attn.qkv_proj.weight, config=config)  # fmt: skip
        # the rest of Qwen3MoeAttention.forward_prepare and forward_core (patched sglang)
        q, k, v = qkv.split([attn.q_size, attn.kv_size, attn.kv_size], dim=-1)
        state = prepare_attention(attn, positions, q, k, v, forward_batch)
        hidden_states, _ = attn.o_proj(attend(attn, state))
    else:
        hidden_states, residual = comm.prepare_attn(hidden_states, residual, forward_batch)
        hidden_states = attn(positions, hidden_states, forward_batch)
    ln = layer.post_attention_layernorm
    fused = layer.mlp.experts.forward_normed(hidden_states, residual, ln.weight,
                                             ln.variance_epsilon)  # fmt: skip
    _log_once(config is not None, fused is not None, hidden_states.shape[0])
    if fused is not None:
        return fused
    hidden_states, residual = comm.prepare_mlp(hidden_states, residual, forward_batch)
    return layer.mlp(hidden_states, forward_batch), residual
