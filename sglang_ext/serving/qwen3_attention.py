"""What sglang's Qwen3-MoE attention does between ``qkv_proj`` and attention: the per-head
q/k RMSNorm (``_apply_qk_norm``), the rotary embedding (``rotary_emb``) and, inside the
attention backend, the KV-cache write (``set_kv_buffer``).

Patch 0017 calls :func:`qk_norm_rope` there. On CUDA, for the plain rotary embedding Qwen3
uses (neox pairs over the whole head), it is one Triton kernel in place on the q/k slices of
the qkv buffer (:mod:`sglang_ext.kernels.qk_norm_rope`): three launches and, for more than
one token, two copies fewer per layer. Patch 0018 hands it the value and the batch too: where
the layer's KV cache is sglang's plain bf16/fp16/fp32 ``MHATokenToKVPool`` and the backend is
the Triton one (the one checked against HF on the GPU, ``tests/gpu_e2e``), the same launch
writes the rotated key and the value to the cache rows ``out_cache_loc`` and the attention
call skips its own write: two ``index_put`` launches fewer per layer. Anything else (the
flashinfer backend too), and every CPU run, takes sglang's own calls, unchanged.

Patch 0024 goes one step further at decode: :func:`prepare_attention` (``forward_prepare``'s
part after the qkv split) runs the whole attention in one Triton launch
(:mod:`sglang_ext.kernels.decode_attention`: q/k norm, rotary, KV-cache write, the split-KV
attention and the merge of its splits) where the write above is fused and the backend's
decode metadata (``kv_indptr``, ``kv_indices``, ``num_kv_splits``, the split buffers) is
sglang's Triton one, with no logit cap or sliding window and ``SGLANG_EXT_FUSED_ATTENTION``
not 0; :func:`attend` (``forward_core``'s call) then hands its output on.  Elsewhere they run
the calls above and sglang's ``RadixAttention``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["attend", "decode_attention", "fusable", "kv_cache_target", "prepare_attention",
           "qk_norm_rope"]  # fmt: skip

logger = logging.getLogger(__name__)

_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
# Backends whose forward_extend / forward_decode write k and v only through
# set_kv_buffer(out_cache_loc) under save_kv_cache and otherwise read them from the cache,
# and whose served tokens were checked against HF with the fused write (tests/gpu_e2e).
# FlashInferAttnBackend meets the first condition, not yet the second.
_KV_BACKENDS = ("TritonAttnBackend",)
_CACHE_ATTR = "_sglang_ext_fusable"
_DECODE_ATTR = "_sglang_ext_decode_attention"
_logged: list[bool] = []  # the one-launch attention's first use, logged once


def fusable(attn: Any, q: torch.Tensor) -> bool:
    """Whether the fused kernel computes exactly what ``attn``'s two calls would (worked out
    once per module, device and dtype)."""
    if torch.compiler.is_compiling():
        return _fusable(attn, q)
    key = (q.device, q.dtype)
    cached = attn.__dict__.get(_CACHE_ATTR)
    if cached is not None and cached[0] == key:
        return cached[1]
    ok = _fusable(attn, q)
    attn.__dict__[_CACHE_ATTR] = (key, ok)
    return ok


def _fusable(attn: Any, q: torch.Tensor) -> bool:
    rope = attn.rotary_emb
    if not q.is_cuda or q.dtype not in _DTYPES:
        return False
    if type(rope).__name__ != "RotaryEmbedding":  # scaled / multimodal variants: not here
        return False
    if type(attn.q_norm).__name__ != "RMSNorm" or type(attn.k_norm).__name__ != "RMSNorm":
        return False
    from sglang_ext.kernels.qk_norm_rope import supports

    return (
        rope.head_size == attn.head_dim
        and rope.cos_sin_cache.device == q.device
        and attn.q_norm.variance_epsilon == attn.k_norm.variance_epsilon
        and supports(attn.head_dim, rope.cos_sin_cache, rope.is_neox_style)
    )


def kv_cache_target(
    attn: Any, forward_batch: Any, k: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """(k_cache, v_cache, out_cache_loc) of this layer when the fused kernel may write them in
    place of ``set_kv_buffer``; None where sglang's own write must run."""
    if forward_batch is None:
        return None
    pool = getattr(forward_batch, "token_to_kv_pool", None)
    radix = getattr(attn, "attn", None)
    loc = getattr(forward_batch, "out_cache_loc", None)
    if pool is None or radix is None or loc is None or loc.numel() != k.shape[0]:
        return None
    if type(pool).__name__ != "MHATokenToKVPool":
        return None
    if type(getattr(forward_batch, "attn_backend", None)).__name__ not in _KV_BACKENDS:
        return None
    if pool.dtype != k.dtype or pool.store_dtype != k.dtype:  # fp8 caches scale and cast
        return None
    if getattr(radix, "k_scale", None) is not None or getattr(radix, "v_scale", None) is not None:
        return None
    if getattr(radix, "is_cross_attention", False):
        return None
    return pool.get_key_buffer(radix.layer_id), pool.get_value_buffer(radix.layer_id), loc


def qk_norm_rope(
    attn: Any,
    positions: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor | None = None,
    forward_batch: Any = None,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``attn._apply_qk_norm`` then ``attn.rotary_emb``; returns (q, k) as sglang's would and
    ``save_kv_cache``: False when k and v are already in the layer's KV cache."""
    if not fusable(attn, q):
        q, k = attn._apply_qk_norm(q, k)
        q, k = attn.rotary_emb(positions, q, k)
        return q, k, True
    from sglang_ext.kernels.qk_norm_rope import qk_norm_rope as fused

    target = kv_cache_target(attn, forward_batch, k) if v is not None else None
    kv = {}
    if target is not None:
        kv = dict(value=v, k_cache=target[0], v_cache=target[1], cache_loc=target[2])
    fused(
        positions,
        q,
        k,
        attn.q_norm.weight,
        attn.k_norm.weight,
        attn.q_norm.variance_epsilon,
        attn.head_dim,
        attn.rotary_emb.cos_sin_cache,
        attn.rotary_emb.is_neox_style,
        **kv,
    )
    return q, k, target is None


@dataclass(slots=True)
class AttentionState:
    """What ``forward_prepare`` hands ``forward_core``: the attention output already computed
    (``out``), or sglang's arguments for ``RadixAttention``."""

    out: torch.Tensor | None = None
    q: torch.Tensor | None = None
    k: torch.Tensor | None = None
    v: torch.Tensor | None = None
    forward_batch: Any = None
    save_kv_cache: bool = True


def prepare_attention(
    attn: Any, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    forward_batch: Any,
) -> AttentionState:  # fmt: skip
    """The one-launch decode attention where it applies, else :func:`qk_norm_rope`."""
    out = decode_attention(attn, positions, q, k, v, forward_batch)
    if out is not None:
        return AttentionState(out=out)
    q, k, save_kv_cache = qk_norm_rope(attn, positions, q, k, v, forward_batch)
    return AttentionState(None, q, k, v, forward_batch, save_kv_cache)


def attend(attn: Any, state: AttentionState) -> torch.Tensor:
    """The attention output: the one computed by :func:`prepare_attention`, or sglang's."""
    if state.out is not None:
        return state.out
    return attn.attn(state.q, state.k, state.v, state.forward_batch,
                     save_kv_cache=state.save_kv_cache)  # fmt: skip


def _decode_heads(attn: Any, backend: Any) -> tuple[int, int, int] | None:
    """(query heads, KV heads, head_dim) when the layer and backend suit the kernel (worked
    out once per module); None otherwise."""
    cached = attn.__dict__.get(_DECODE_ATTR)
    if cached is not None and cached[0] is backend:
        return cached[1]
    from sglang_ext.kernels.decode_attention import check_launch
    from sglang_ext.serving.config import rank_config

    radix, heads = attn.attn, None
    window = getattr(radix, "sliding_window_size", None)
    md = getattr(backend, "forward_metadata", None)
    if (
        rank_config().fused_attention
        and type(backend).__name__ == "TritonAttnBackend"
        and all(
            hasattr(md, f)
            for f in ("kv_indptr", "kv_indices", "num_kv_splits", "attn_logits", "attn_lse")
        )  # fmt: skip
        and not getattr(radix, "logit_cap", 0)
        and (window is None or window < 0)
        and radix.qk_head_dim == radix.v_head_dim == attn.head_dim
        and check_launch(radix.tp_q_head_num, radix.tp_k_head_num, attn.head_dim) is None
    ):
        heads = (radix.tp_q_head_num, radix.tp_k_head_num, attn.head_dim)
    attn.__dict__[_DECODE_ATTR] = (backend, heads)
    return heads


def decode_attention(
    attn: Any, positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    forward_batch: Any,
) -> torch.Tensor | None:  # fmt: skip
    """The layer's attention output at decode from one kernel, or None (sglang's calls)."""
    mode = getattr(forward_batch, "forward_mode", None)
    if mode is None or not mode.is_decode() or torch.compiler.is_compiling():
        return None
    if not fusable(attn, q):
        return None
    backend = forward_batch.attn_backend
    heads = _decode_heads(attn, backend)
    target = kv_cache_target(attn, forward_batch, k) if heads else None
    if target is None:
        return None
    from sglang_ext.kernels.decode_attention import decode_attention as kernel
    from sglang_ext.kernels.decode_attention import tickets
    from sglang_ext.kernels.decode_attention_launch import stage1_config

    n_q, n_kv, head_dim = heads
    md, n = backend.forward_metadata, positions.numel()
    ticket = tickets(q.device, n * n_kv)
    if ticket is None or md.attn_logits.shape[0] < n or md.kv_indptr.numel() <= n:
        return None
    block_n, warps, stages = stage1_config(n, n_q // n_kv, head_dim, q.device)
    k_cache, v_cache, loc = target
    rope, radix = attn.rotary_emb, attn.attn
    out = kernel(
        positions, q, k, v, attn.q_norm.weight, attn.k_norm.weight,
        attn.q_norm.variance_epsilon, rope.cos_sin_cache, k_cache, v_cache, loc,
        md.kv_indptr, md.kv_indices, md.num_kv_splits, md.attn_logits, md.attn_lse,
        radix.scaling, ticket=ticket, block_n=block_n, num_warps=warps, num_stages=stages,
    )  # fmt: skip
    if not _logged:
        _logged.append(True)
        logger.info("sglang-ext decode attention: q/k norm, rotary, KV write, attention and "
                    "the merge of its splits in one launch (first at %d tokens)", n)  # fmt: skip
    return out
