"""Helpers for the pruner tests: the tiny Qwen3-MoE config and a directory hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

TOKENIZER_VOCAB = 512  # ordinary tokens; 26 added tokens follow


def tiny_config(**overrides):
    from transformers import Qwen3MoeConfig

    kw = dict(
        vocab_size=544,  # >= 512 + 26 tokenizer ids
        hidden_size=64,
        intermediate_size=96,
        moe_intermediate_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        num_experts=8,
        num_experts_per_tok=2,
        norm_topk_prob=False,
        decoder_sparse_step=1,
        mlp_only_layers=[1],  # layer 1 is dense and must come through untouched
        max_position_embeddings=128,
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    kw.update(overrides)
    return Qwen3MoeConfig(**kw)


def dir_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
