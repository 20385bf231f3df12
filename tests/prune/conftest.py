"""A tiny random Qwen3-MoE checkpoint (8 experts, several float32 shards) built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _tiny_moe import TOKENIZER_VOCAB, dir_hashes, tiny_config


@pytest.fixture(scope="session")
def tiny_moe_dir(tmp_path_factory) -> Path:
    from transformers import GenerationConfig, Qwen3MoeForCausalLM

    from sglang_ext.presets.tokenizer import build_tokenizer

    root = tmp_path_factory.mktemp("tiny_qwen3_moe") / "src"
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(tiny_config()).eval()
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
    before = dir_hashes(tiny_moe_dir)
    yield tiny_moe_dir
    assert dir_hashes(tiny_moe_dir) == before, "SRC was modified"
