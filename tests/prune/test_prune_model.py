"""The pruned checkpoint computes what the original computes with routing forced to one expert.

Reference: the original HF model with each MoE block's forward replaced by "the chosen expert,
weight 1" (or "the element-wise mean of the experts, weight 1"), built from the original weights
in the test. The pruned model is loaded by HF ``AutoModelForCausalLM`` and runs HF's own
``Qwen3MoeSparseMoeBlock`` with one expert.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

import sglang_ext
from sglang_ext.prune.__main__ import main

# float32 on both sides, same kernels; the only extra ops in the pruned model are softmax over
# one logit (exactly 1.0), a multiply by 1.0 and index_add_ onto zeros, so results agree to
# rounding: 1e-5 leaves room for a different summation order only.
TOL = dict(rtol=1e-5, atol=1e-5)
MOE_LAYERS = (0, 2, 3)


def _load(path: Path):
    model, info = AutoModelForCausalLM.from_pretrained(
        path, torch_dtype=torch.float32, attn_implementation="eager", output_loading_info=True
    )
    assert not any(info.values()), f"loading {path} reported {info}"
    return model.eval()


def _forced_logits(
    src: Path, choice: dict[int, int | None], input_ids: torch.Tensor
) -> torch.Tensor:
    model = _load(src)
    for i, layer in enumerate(model.model.layers):
        if i not in choice:
            assert not isinstance(layer.mlp, Qwen3MoeSparseMoeBlock)
            continue
        moe = layer.mlp
        if choice[i] is None:
            expert = copy.deepcopy(moe.experts[0])
            with torch.no_grad():
                for proj in ("gate_proj", "up_proj", "down_proj"):
                    stack = torch.stack([getattr(e, proj).weight for e in moe.experts])
                    getattr(expert, proj).weight.copy_(stack.double().mean(0).float())
        else:
            expert = moe.experts[choice[i]]
        moe.forward = lambda h, expert=expert: (expert(h), None)  # weight exactly 1
    with torch.no_grad():
        return model(input_ids).logits


def _pruned_logits(dst: Path, input_ids: torch.Tensor) -> torch.Tensor:
    model = _load(dst)
    with torch.no_grad():
        return model(input_ids).logits


def _inputs() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 538, (2, 13), generator=g)


def _check_layout(dst: Path) -> dict:
    cfg = json.loads((dst / "config.json").read_text())
    assert (cfg["num_experts"], cfg["num_experts_per_tok"], cfg["norm_topk_prob"]) == (1, 1, True)
    assert cfg["mlp_only_layers"] == [1] and cfg["hidden_size"] == 64
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) >= 2, "expected a sharded output"
    for f in ("tokenizer.json", "tokenizer_config.json", "generation_config.json", "README.md"):
        assert (dst / f).is_file(), f"{f} not copied"
    assert (dst / "extra" / "notes.txt").is_file() and not (dst / "extra" / "stale.bin").exists()
    assert not list(dst.parent.glob(f".{dst.name}.partial-*")), "temp dir left behind"
    return json.loads((dst / "prune_info.json").read_text())


def test_index_expert_matches_forced_routing(src_guard, tmp_path):
    dst = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(sglang_ext.__file__).parents[1]))
    cmd = [
        sys.executable,
        "-m",
        "sglang_ext.prune",
        str(src_guard),
        str(dst),
        "--expert",
        "3",
        "--max-shard-size",
        "150KB",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    info = _check_layout(dst)
    assert info["experts_per_layer"] == {str(i): 3 for i in MOE_LAYERS}

    x = _inputs()
    ref = _forced_logits(src_guard, {i: 3 for i in MOE_LAYERS}, x)
    torch.testing.assert_close(_pruned_logits(dst, x), ref, **TOL)
    # The router row kept is the expert's own row.
    src_model, dst_model = _load(src_guard), _load(dst)
    for i in MOE_LAYERS:
        got = dst_model.model.layers[i].mlp.gate.weight
        torch.testing.assert_close(
            got, src_model.model.layers[i].mlp.gate.weight[3:4], rtol=0, atol=0
        )


def test_mean_matches_forced_mean_expert(src_guard, tmp_path):
    dst = tmp_path / "out"
    assert main([str(src_guard), str(dst), "--expert", "mean", "--max-shard-size", "150KB"]) == 0
    info = _check_layout(dst)
    assert info["experts_per_layer"] == {str(i): "mean" for i in MOE_LAYERS}
    x = _inputs()
    ref = _forced_logits(src_guard, dict.fromkeys(MOE_LAYERS), x)
    torch.testing.assert_close(_pruned_logits(dst, x), ref, **TOL)


def test_most_used_matches_direct_router_count(src_guard, tmp_path):
    prompts = ["the expert router picks a token", "hello world, explain the batch size", "12345 !?"]
    dst = tmp_path / "out"
    rc = main(
        [
            str(src_guard),
            str(dst),
            "--expert",
            "most-used",
            "--max-shard-size",
            "150KB",
            "--calibration-prompts",
            *prompts,
        ]
    )
    assert rc == 0
    info = _check_layout(dst)

    # Direct count: full HF model, one prompt at a time, router logits captured at each gate.
    # (HF 4.52's output_router_logits breaks on dense layers, so hooks rather than that flag.)
    tok = AutoTokenizer.from_pretrained(src_guard)
    model = _load(src_guard)
    counts = {i: torch.zeros(8, dtype=torch.int64) for i in MOE_LAYERS}

    def hook(i):
        def fn(_mod, _inp, logits):
            top = torch.topk(F.softmax(logits, dim=-1, dtype=torch.float), 2, dim=-1).indices
            counts[i] += torch.bincount(top.reshape(-1), minlength=8)

        return fn

    for i in MOE_LAYERS:
        model.model.layers[i].mlp.gate.register_forward_hook(hook(i))
    with torch.no_grad():
        for p in prompts:
            model(torch.tensor([tok(p, add_special_tokens=False)["input_ids"]]))
    expected = {str(i): int(torch.argmax(counts[i])) for i in MOE_LAYERS}
    assert info["calibration"]["counts"] == {str(i): counts[i].tolist() for i in MOE_LAYERS}
    assert info["experts_per_layer"] == expected

    x = _inputs()
    ref = _forced_logits(src_guard, {i: expected[str(i)] for i in MOE_LAYERS}, x)
    torch.testing.assert_close(_pruned_logits(dst, x), ref, **TOL)


@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_single_expert_gets_weight_exactly_one(norm_topk_prob, moe_config):
    """HF's block with one expert: softmax over one logit is 1.0, renormalised or not."""
    torch.manual_seed(0)
    cfg = moe_config(num_experts=1, num_experts_per_tok=1, norm_topk_prob=norm_topk_prob)
    block = Qwen3MoeSparseMoeBlock(cfg).eval()
    with torch.no_grad():
        block.gate.weight.normal_(0.0, 100.0)  # huge logits of both signs
        x = torch.randn(3, 7, 64)
        out, logits = block(x)
        assert logits.abs().max() > 100
        assert torch.equal(out, block.experts[0](x.reshape(-1, 64)).reshape(3, 7, 64))
