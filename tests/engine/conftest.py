"""Tiny random Qwen3 / Qwen3-MoE checkpoints, built with transformers and saved to tmp."""

from __future__ import annotations

import pytest
import torch


def make_tiny_checkpoint(path, kind: str, seed: int = 0) -> str:
    """Save a 4-layer, hidden-64 float32 checkpoint of ``kind`` ('qwen3' or 'qwen3_moe')."""
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig, Qwen3MoeForCausalLM

    common = dict(
        vocab_size=256,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=96,
        max_position_embeddings=512,
        rope_theta=10000.0,
        torch_dtype="float32",
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    if kind == "qwen3":
        cfg = Qwen3Config(tie_word_embeddings=True, **common)
        model = Qwen3ForCausalLM(cfg)
    else:
        # one expert, top-1; decoder_sparse_step=1 and no mlp_only_layers -> every layer MoE,
        # except layer 2 made dense through mlp_only_layers to cover both layer kinds.
        cfg = Qwen3MoeConfig(
            num_experts=1,
            num_experts_per_tok=1,
            moe_intermediate_size=48,
            decoder_sparse_step=1,
            mlp_only_layers=[2],
            norm_topk_prob=False,
            tie_word_embeddings=False,
            **common,
        )
        model = Qwen3MoeForCausalLM(cfg)
    with torch.no_grad():  # make the norms non-trivial so q_norm/k_norm mistakes show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.to(torch.float32).save_pretrained(path, safe_serialization=True)
    return str(path)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_models")
    return {k: make_tiny_checkpoint(root / k, k) for k in ("qwen3", "qwen3_moe")}
