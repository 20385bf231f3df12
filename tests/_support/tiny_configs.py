"""Tiny random-weight Qwen3 / Qwen3-MoE configs (transformers) for the tests.

One base shape (hidden 64, 4 layers, 4 query / 2 KV heads of 16, float32, vocabulary 256);
each test passes what its check needs as keyword overrides, which win over the base.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TINY_BASE", "TINY_MOE", "qwen3_config", "qwen3_moe_config"]

TINY_BASE: dict[str, Any] = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    torch_dtype="float32",
)
# the MoE part: one expert, top-1, every layer sparse (the single-expert shape this repo serves)
TINY_MOE: dict[str, Any] = dict(
    num_experts=1,
    num_experts_per_tok=1,
    moe_intermediate_size=48,
    decoder_sparse_step=1,
    norm_topk_prob=False,
)


def qwen3_config(**overrides: Any):
    """A ``transformers.Qwen3Config``: ``TINY_BASE`` updated with ``overrides``."""
    from transformers import Qwen3Config

    return Qwen3Config(**{**TINY_BASE, **overrides})


def qwen3_moe_config(**overrides: Any):
    """A ``transformers.Qwen3MoeConfig``: ``TINY_BASE`` and ``TINY_MOE`` updated with
    ``overrides``."""
    from transformers import Qwen3MoeConfig

    return Qwen3MoeConfig(**{**TINY_BASE, **TINY_MOE, **overrides})
