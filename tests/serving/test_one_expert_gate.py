"""serving/qwen3_moe.one_expert_gate: a one-expert block computes no router logits.

Reference: HF transformers' own ``Qwen3MoeSparseMoeBlock`` with one expert (float64), whose
router softmax over one logit gives the expert weight 1. The block patch 0010 builds (the
gate swapped for ``one_expert_gate``, experts from ``build_single_expert_moe``) must give the
same output from the same weights, for any gate weight.
"""

from types import SimpleNamespace

import pytest
import torch
from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

from sglang_ext.serving.config import SingleExpertConfig
from sglang_ext.serving.qwen3_moe import build_single_expert_moe, one_expert_gate
from tests._support.tiny_configs import qwen3_moe_config

H, INTER, T = 16, 24, 9


def _group():
    return SimpleNamespace(rank_in_group=0, world_size=1, device_group=None)


@pytest.mark.parametrize("norm_topk_prob", [False, True])
def test_block_without_router_matches_hf(norm_topk_prob):
    torch.manual_seed(0)
    cfg = qwen3_moe_config(
        hidden_size=H, moe_intermediate_size=INTER, norm_topk_prob=norm_topk_prob
    )  # one expert, top-1
    hf = Qwen3MoeSparseMoeBlock(cfg).double()
    for p in hf.parameters():
        torch.nn.init.normal_(p, std=0.3)  # a gate weight far from zero: logits matter in HF
    e = hf.experts[0]
    gate = one_expert_gate(hf.gate)
    experts = build_single_expert_moe(
        hidden_size=H,
        intermediate_size=INTER,
        layer_id=0,
        config=SingleExpertConfig(mode="tp"),
        tp_group=_group(),
        ep_group=None,
    ).double()
    for shard_id, w in (("w1", e.gate_proj), ("w3", e.up_proj), ("w2", e.down_proj)):
        param = experts.w2_weight if shard_id == "w2" else experts.w13_weight
        param.weight_loader(param, w.weight.data, "experts.0.x.weight", shard_id, 0)
    x = torch.randn(1, T, H, dtype=torch.float64)
    want, hf_logits = hf(x)
    assert hf_logits.abs().min() > 0  # HF did compute (non-trivial) logits
    logits, _ = gate(x[0])
    assert logits is None
    got = experts(x[0], logits)
    torch.testing.assert_close(got, want[0], rtol=1e-12, atol=1e-12)


def test_gate_keeps_the_checkpoint_weight_and_its_loader():
    lin = torch.nn.Linear(H, 1, bias=False)
    lin.weight.weight_loader = lambda param, loaded: param.data.copy_(loaded)
    gate = one_expert_gate(lin)
    assert dict(gate.named_parameters()).keys() == {"weight"}  # mlp.gate.weight still loads
    loaded = torch.randn(1, H)
    gate.weight.weight_loader(gate.weight, loaded)
    torch.testing.assert_close(lin.weight.data, loaded)


def test_gate_of_several_experts_is_refused():
    with pytest.raises(ValueError, match="expected 1"):
        one_expert_gate(torch.nn.Linear(H, 4, bias=False))
