"""Our plain-torch Qwen3 / Qwen3-MoE forward against HF transformers on the same weights."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from sglang_ext.engine.model import ModelArgs, load_model

# float32 on CPU, 4 tiny layers: differences are summation-order only (~1e-6).
ATOL, RTOL = 1e-4, 1e-4


@pytest.mark.parametrize("kind", ["qwen3", "qwen3_moe"])
@pytest.mark.parametrize("chunk", [5, 64])
def test_chunked_forward_matches_hf(tiny_models, kind, chunk):
    path = tiny_models[kind]
    hf = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    ours = load_model(path)
    ids = torch.randint(0, 256, (23,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = hf(ids[None], use_cache=True)
        caches = ours.new_cache(len(ids))
        for s in range(0, len(ids), chunk):
            h = ours.run_layers(ours.embed(ids[s : s + chunk]), range(4), caches, s, "sdpa")
        logits = ours.logits(h[-1:])[0]
    torch.testing.assert_close(
        logits, ref.logits[0, -1], atol=ATOL, rtol=RTOL, msg=f"{kind} logits"
    )
    for i, c in enumerate(caches):
        k_ref, v_ref = ref.past_key_values[i]  # [1, Hkv, L, d]
        torch.testing.assert_close(
            c.k.transpose(0, 1), k_ref[0], atol=ATOL, rtol=RTOL, msg=f"{kind} k{i}"
        )
        torch.testing.assert_close(
            c.v.transpose(0, 1), v_ref[0], atol=ATOL, rtol=RTOL, msg=f"{kind} v{i}"
        )


def test_moe_layer_rule_follows_hf(tiny_models):
    import json
    from pathlib import Path

    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    cfg = json.loads((Path(tiny_models["qwen3_moe"]) / "config.json").read_text())
    args = ModelArgs.from_hf_config(cfg)
    hf = AutoModelForCausalLM.from_pretrained(tiny_models["qwen3_moe"])
    hf_kinds = [isinstance(layer.mlp, Qwen3MoeSparseMoeBlock) for layer in hf.model.layers]
    assert hf_kinds == [args.is_moe_layer(i) for i in range(4)] == [True, True, False, True]


def test_bad_config_errors():
    with pytest.raises(ValueError, match="model_type"):
        ModelArgs.from_hf_config({"model_type": "llama"})
    with pytest.raises(ValueError, match="exactly one"):
        load_model(None)
    with pytest.raises(ValueError, match="dummy-preset"):
        load_model(None, dummy_preset="nope")
