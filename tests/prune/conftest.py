"""A tiny random Qwen3-MoE checkpoint (8 experts, several float32 shards) built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests._support.tiny_configs import qwen3_moe_config
from tests._support.trees import snapshot

TOKENIZER_VOCAB = 512  # ordinary tokens; 26 added tokens follow
# the pruner's source shape: 8 experts, top-2; layer 1 is dense and must come through untouched
PRUNE_SHAPE = dict(
    vocab_size=544,  # >= 512 + 26 tokenizer ids
    moe_intermediate_size=32,
    num_experts=8,
    num_experts_per_tok=2,
    mlp_only_layers=[1],
    max_position_embeddings=128,
    tie_word_embeddings=False,
)


@pytest.fixture(scope="session")
def moe_config():
    """Builds the pruner tests' tiny Qwen3-MoE config; keyword overrides win over it."""
    return lambda **overrides: qwen3_moe_config(**{**PRUNE_SHAPE, **overrides})


@pytest.fixture(scope="session")
def tiny_moe_dir(tmp_path_factory, moe_config) -> Path:
    from transformers import GenerationConfig, Qwen3MoeForCausalLM

    from sglang_ext.presets.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("tiny_qwen3_moe") / "src"
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(moe_config()).eval()
    # Spread the router logits (default init is tiny) so top-k choices are clear-cut.
    with torch.no_grad():
        for layer in model.model.layers:
            if hasattr(layer.mlp, "gate"):
                layer.mlp.gate.weight.normal_(0.0, 1.0)
    model.save_pretrained(root, max_shard_size="200KB", safe_serialization=True)
    GenerationConfig(eos_token_id=TOKENIZER_VOCAB + 2).save_pretrained(root)
    build_tokenizer(root, vocab_size=TOKENIZER_VOCAB)
    (root / "README.md").write_text("tiny test model\n")
    (root / "extra").mkdir()  # a sub-folder: copied, minus weight files
    (root / "extra" / "notes.txt").write_text("notes\n")
    (root / "extra" / "stale.bin").write_bytes(b"old weights")
    assert len(list(root.glob("model-*.safetensors"))) >= 3, "fixture must be sharded"
    return root


@pytest.fixture
def src_guard(tiny_moe_dir):
    """Fails the test if anything under SRC changed."""
    before = snapshot(tiny_moe_dir)
    yield tiny_moe_dir
    assert snapshot(tiny_moe_dir) == before, "SRC was modified"
