"""serving/qwen3_moe.py, the experts patch 0010 puts into sglang's Qwen3-MoE block.

The module it builds is compared with a float64 SwiGLU written here from HF's definition
(down(silu(gate(x)) * up(x))); sglang's groups and server flags are stand-ins with the
fields the adapter reads, so the sums over simulated ranks need no collectives.
"""

import logging
import sys
import types
from types import SimpleNamespace

import pytest
import torch

from sglang_ext.serving.config import CONFIG_ENV, SingleExpertConfig, rank_config
from sglang_ext.serving.qwen3_moe import build_single_expert_moe, make_experts

H, INTER, T = 16, 24, 7
MODEL = SimpleNamespace(num_experts=1, hidden_size=H, moe_intermediate_size=INTER)
SERVER_ARGS = {"enable_deepep_moe": False, "ep_num_redundant_experts": 0}


def group(rank: int, world_size: int):
    return SimpleNamespace(rank_in_group=rank, world_size=world_size, device_group=None)


@pytest.fixture(autouse=True)
def _float64_models():
    """sglang builds models under a default dtype; float64 makes the comparison exact."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    rank_config.cache_clear()
    yield
    torch.set_default_dtype(old)
    rank_config.cache_clear()


@pytest.fixture
def fake_sglang(monkeypatch):
    """sglang's parallel_state and global_server_args_dict, as make_experts reads them."""
    state = SimpleNamespace(tp=group(0, 1), ep=group(0, 1), server_args=dict(SERVER_ARGS))
    dist = types.ModuleType("sglang.srt.distributed")
    dist.parallel_state = SimpleNamespace(
        get_tp_group=lambda: state.tp, get_moe_ep_group=lambda: state.ep
    )
    batch = types.ModuleType("sglang.srt.managers.schedule_batch")
    batch.global_server_args_dict = state.server_args
    monkeypatch.setitem(sys.modules, "sglang.srt.distributed", dist)
    monkeypatch.setitem(sys.modules, "sglang.srt.managers.schedule_batch", batch)
    return state


def use_config(monkeypatch, **kw) -> None:
    monkeypatch.setenv(CONFIG_ENV, SingleExpertConfig(**kw).to_json())
    rank_config.cache_clear()


def hf_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {
        "gate_proj": torch.randn(INTER, H, generator=gen, dtype=torch.float64) / H**0.5,
        "up_proj": torch.randn(INTER, H, generator=gen, dtype=torch.float64) / H**0.5,
        "down_proj": torch.randn(H, INTER, generator=gen, dtype=torch.float64) / INTER**0.5,
    }


def load(experts, w) -> None:
    """What sglang's Qwen3MoeForCausalLM.load_weights does with the expert params mapping."""
    for shard_id, name in (("w1", "gate_proj"), ("w3", "up_proj"), ("w2", "down_proj")):
        param = experts.w2_weight if shard_id == "w2" else experts.w13_weight
        param.weight_loader(param, w[name], f"experts.0.{name}.weight", shard_id, 0)


def reference(x, w):
    gate, up = x @ w["gate_proj"].T, x @ w["up_proj"].T
    return (gate * torch.sigmoid(gate) * up) @ w["down_proj"].T


def test_multi_expert_model_keeps_sglangs_experts(fake_sglang):
    fake_sglang.server_args["enable_deepep_moe"] = True  # not even looked at
    assert make_experts(SimpleNamespace(num_experts=8), layer_id=0) is None


@pytest.mark.parametrize("mode", [None, "tp", "dp"])
def test_world_of_one_matches_float64_swiglu(fake_sglang, monkeypatch, mode):
    use_config(monkeypatch, mode=mode)
    experts = make_experts(MODEL, layer_id=3)
    assert experts.mode == (mode or "tp")
    w = hf_weights()
    load(experts, w)
    x = torch.randn(T, H, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    router_logits = torch.randn(T, 1, dtype=torch.float64)  # one expert: its weight is 1
    torch.testing.assert_close(experts(x, router_logits), reference(x, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "mode,routing", [("tp", "random"), ("dp", "random"), ("dp", "round_robin")]
)
def test_two_ranks_sum_to_the_reference(mode, routing):
    """What the block's TP all-reduce computes: the sum of the two ranks' outputs."""
    w = hf_weights(2)
    config = SingleExpertConfig(mode=mode, dp_routing=routing)
    ranks = []
    for r in range(2):
        experts = build_single_expert_moe(
            hidden_size=H,
            intermediate_size=INTER,
            layer_id=5,
            config=config,
            tp_group=group(r, 2),
            ep_group=group(r, 2),
        )
        load(experts, w)
        ranks.append(experts)
    x = torch.randn(T, H, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    for _ in range(3):  # dp routing state advances the same way on both ranks
        total = ranks[0](x) + ranks[1](x)
        torch.testing.assert_close(total, reference(x, w), rtol=1e-12, atol=1e-12)
    shard = INTER // 2 if mode == "tp" else INTER
    assert [tuple(e.w2_weight.shape) for e in ranks] == [(H, shard), (H, shard)]
    computed = sum(e.tokens_computed for e in ranks)
    assert computed == (2 * 3 * T if mode == "tp" else 3 * T)  # dp: every token once


@pytest.mark.parametrize("mode,rank", [("tp", 1), ("dp", 0)])
def test_groups_follow_the_mode(fake_sglang, monkeypatch, mode, rank):
    """tp shards over the TP group; dp replicates over the MoE EP group (here rank 1 of
    TP and rank 0 of EP, so the rank tells which group was used)."""
    fake_sglang.tp, fake_sglang.ep = group(1, 2), group(0, 2)
    use_config(monkeypatch, mode=mode, dp_routing="round_robin")
    experts = make_experts(MODEL, layer_id=1)
    assert (experts.mode, experts.rank, experts.world_size) == (mode, rank, 2)
    assert experts.dp_routing == "round_robin"


def test_dp_needs_the_ep_group_to_span_the_tp_group(fake_sglang, monkeypatch):
    fake_sglang.tp, fake_sglang.ep = group(0, 2), group(0, 1)
    use_config(monkeypatch, mode="dp")
    with pytest.raises(
        ValueError, match=r"--ep-size must equal --tp-size \(got --ep-size 1, --tp-size 2\)"
    ):
        make_experts(MODEL, layer_id=0)


@pytest.mark.parametrize(
    "flag,value,match",
    [
        ("enable_deepep_moe", True, "drop --enable-deepep-moe"),
        ("ep_num_redundant_experts", 2, "--ep-num-redundant-experts has no meaning"),
    ],
)
def test_flags_without_meaning_for_one_expert_are_refused(fake_sglang, flag, value, match):
    fake_sglang.server_args[flag] = value
    with pytest.raises(ValueError, match=match):
        make_experts(MODEL, layer_id=0)


def test_layer_zero_names_mode_and_rank(fake_sglang, monkeypatch, caplog):
    """The server tests look for this line in the log of every rank."""
    fake_sglang.tp = group(1, 2)
    use_config(monkeypatch, mode="tp")
    caplog.set_level(logging.INFO, logger="sglang_ext.serving.qwen3_moe")
    make_experts(MODEL, layer_id=0)
    make_experts(MODEL, layer_id=1)
    lines = [r.getMessage() for r in caplog.records if "SingleExpertMoE" in r.getMessage()]
    assert lines == ["sglang-ext SingleExpertMoE: mode tp, rank 1 of 2"]
