"""The bench's dummy checkpoint (what sglang loads) is a valid HF Qwen3-MoE checkpoint."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from sglang_ext.engine.model import load_model
from sglang_ext.engine.sglang_compare import save_hf_checkpoint


def test_saved_dummy_loads_in_hf_with_same_logits(tmp_path):
    ours = load_model(None, dummy_preset="tiny-moe-1e", num_layers=2, seed=5)
    save_hf_checkpoint(ours, tmp_path)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, torch_dtype=torch.float32).eval()
    assert type(hf).__name__ == "Qwen3MoeForCausalLM"
    ids = torch.arange(0, 4000, 97)
    with torch.no_grad():
        ref = hf(ids[None]).logits[0, -1]
        caches = ours.new_cache(len(ids))
        got = ours.logits(ours.run_layers(ours.embed(ids), range(2), caches, 0, "sdpa")[-1:])[0]
    # float32, 2 layers: summation-order differences only
    torch.testing.assert_close(got, ref, atol=1e-4, rtol=1e-4)
