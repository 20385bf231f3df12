"""Tiny random Qwen3 / Qwen3-MoE checkpoints, built with transformers and saved to tmp."""

from __future__ import annotations

import pytest
import torch


def make_tiny_checkpoint(path, kind: str, seed: int = 0) -> str:
    """Save a 4-layer, hidden-64 float32 checkpoint of ``kind`` ('qwen3' or 'qwen3_moe')."""
    from transformers import Qwen3ForCausalLM, Qwen3MoeForCausalLM

    from tests._support.tiny_configs import qwen3_config, qwen3_moe_config

    # tiny_configs' base (vocab 256, hidden 64, 4 layers, 4/2 heads of 16, intermediate 96)
    common = dict(
        max_position_embeddings=512,
        rope_theta=10000.0,
        eos_token_id=None,
        bos_token_id=None,
        pad_token_id=0,
    )
    torch.manual_seed(seed)
    if kind == "qwen3":
        model = Qwen3ForCausalLM(qwen3_config(tie_word_embeddings=True, **common))
    else:
        # one expert, top-1, moe_intermediate 48, every layer MoE but layer 2 (dense through
        # mlp_only_layers) to cover both layer kinds
        cfg = qwen3_moe_config(mlp_only_layers=[2], tie_word_embeddings=False, **common)
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
