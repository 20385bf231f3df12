"""SingleExpertMoE in one process: loader conventions, errors, mode resolution, edge shapes."""

from __future__ import annotations

import ast
import importlib.util
import typing
from pathlib import Path

import pytest
import torch

from sglang_ext.kernels.fused_mlp_ref import swiglu_mlp_ref
from sglang_ext.layers import SingleExpertMoE, resolve_single_expert_mode
from sglang_ext.layers import single_expert_moe as sem
from sglang_ext.serving.config import rank_config

H, INTER = 16, 24


def _layer(**kw) -> SingleExpertMoE:
    args = dict(hidden_size=H, intermediate_size=INTER, mode="tp", rank=0, world_size=1)
    args.update(kw)
    return SingleExpertMoE(**args)


def _weights(seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return {
        "w1": torch.randn(INTER, H, generator=gen, dtype=dtype) / H**0.5,
        "w3": torch.randn(INTER, H, generator=gen, dtype=dtype) / H**0.5,
        "w2": torch.randn(H, INTER, generator=gen, dtype=dtype) / INTER**0.5,
    }


def _load(layer: SingleExpertMoE, weights) -> SingleExpertMoE:
    for shard_id, w in weights.items():
        param = layer.w2_weight if shard_id == "w2" else layer.w13_weight
        param.weight_loader(param, w, f"experts.0.{shard_id}.weight", shard_id, 0)
    return layer


def test_parameters_follow_fused_moe_layout():
    layer = _layer(mode="tp", rank=1, world_size=4)
    shapes = {n: tuple(p.shape) for n, p in layer.named_parameters()}
    assert shapes == {"w13_weight": (2 * INTER // 4, H), "w2_weight": (H, INTER // 4)}
    assert all(callable(p.weight_loader) and not p.requires_grad for p in layer.parameters())
    assert tuple(_layer(mode="dp", rank=1, world_size=4).w2_weight.shape) == (H, INTER)
    assert _layer(params_dtype=torch.bfloat16).w13_weight.dtype == torch.bfloat16


def test_tp_loader_shards_rows_and_columns():
    w = _weights()
    for rank in range(3):
        layer = _load(_layer(mode="tp", rank=rank, world_size=3, params_dtype=torch.float64), w)
        s = slice(rank * INTER // 3, (rank + 1) * INTER // 3)
        assert torch.equal(layer.w13_weight, torch.cat([w["w1"][s], w["w3"][s]]))
        assert torch.equal(layer.w2_weight, w["w2"][:, s])


def _pristine_mapping():
    """FusedMoE.make_expert_params_mapping compiled from the installed sglang 0.4.7 source
    (importing the module on CPU needs vllm, so the function is lifted out with ast)."""
    spec = importlib.util.find_spec("sglang")
    if spec is None:
        pytest.skip("sglang is not installed: no pristine FusedMoE source to compare with")
    path = Path(spec.origin).parent / "srt/layers/moe/fused_moe_triton/layer.py"
    tree = ast.parse(path.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "FusedMoE")
    fn = next(n for n in cls.body if getattr(n, "name", "") == "make_expert_params_mapping")
    fn.decorator_list = []
    ns = {"List": typing.List, "Tuple": typing.Tuple}  # noqa: UP006
    exec(compile(ast.Module(body=[fn], type_ignores=[]), str(path), "exec"), ns)
    return lambda *a: ns["make_expert_params_mapping"](None, *a)


def test_params_mapping_matches_sglang():
    args = ("gate_proj", "down_proj", "up_proj", 1)
    assert SingleExpertMoE.make_expert_params_mapping(*args) == _pristine_mapping()(*args)
    with pytest.raises(ValueError, match="num_experts=2"):
        SingleExpertMoE.make_expert_params_mapping("gate_proj", "down_proj", "up_proj", 2)


@pytest.mark.parametrize("world_size", [1, 3])
@pytest.mark.parametrize("mode", ["tp", "dp"])
@pytest.mark.parametrize("dp_routing", ["random", "round_robin"])
def test_sum_over_simulated_ranks_matches_float64_reference(world_size, mode, dp_routing):
    """Ranks simulated in one process (no collectives needed without reduce_results): the
    sum of the outputs equals the float64 SwiGLU reference. 3 ranks: an odd world size."""
    w = _weights(1)
    x = torch.randn(5, 2, H, dtype=torch.float64)  # [B, S, H]: leading dims are kept
    layers = [
        _load(
            _layer(
                mode=mode,
                rank=r,
                world_size=world_size,
                params_dtype=torch.float64,
                dp_routing=dp_routing,
            ),
            w,
        )
        for r in range(world_size)
    ]
    ref = swiglu_mlp_ref(x.view(-1, H), torch.cat([w["w1"], w["w3"]]), w["w2"]).view(5, 2, H)
    for _ in range(3):  # routing state advances identically in every simulated rank
        total = sum(layer(x) for layer in layers)
        torch.testing.assert_close(total, ref, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("mode", ["tp", "dp"])
def test_zero_tokens(mode):
    layer = _load(_layer(mode=mode, rank=1, world_size=2, params_dtype=torch.float64), _weights())
    out = layer(torch.empty(0, H, dtype=torch.float64), torch.empty(0, 1, dtype=torch.float64))
    assert out.shape == (0, H) and layer.tokens_computed == 0


def test_loader_rejects_other_experts_and_bad_input():
    layer = _layer()
    w = _weights(dtype=torch.float32)
    with pytest.raises(ValueError, match=r"expert_id=1.*FusedMoE"):
        layer.weight_loader(layer.w13_weight, w["w1"], "experts.1.gate_proj.weight", "w1", 1)
    with pytest.raises(ValueError, match=r"shape \(24, 8\), expected \(24, 16\)"):
        layer.weight_loader(layer.w13_weight, w["w1"][:, :8], "gate_proj.weight", "w1", 0)
    with pytest.raises(ValueError, match=r"shape \(24, 16\), expected \(16, 24\)"):
        layer.weight_loader(layer.w2_weight, w["w1"], "down_proj.weight", "w2", 0)
    with pytest.raises(ValueError, match="shard_id must be one of"):
        layer.weight_loader(layer.w13_weight, w["w1"], "gate_proj.weight", "w4", 0)
    with pytest.raises(ValueError, match="must be loaded into w2_weight"):
        layer.weight_loader(layer.w13_weight, w["w2"], "down_proj.weight", "w2", 0)
    with pytest.raises(ValueError, match="quantization"):
        layer.weight_loader(layer.w13_weight, w["w1"], "gate_proj.weight_scale", "w1", 0)


def test_constructor_errors():
    with pytest.raises(
        ValueError, match=r"intermediate_size=90 .*world_size=4.*--single-expert-mode dp"
    ):
        SingleExpertMoE(hidden_size=H, intermediate_size=90, mode="tp", rank=0, world_size=4)
    # the same shape is fine replicated
    SingleExpertMoE(hidden_size=H, intermediate_size=90, mode="dp", rank=0, world_size=4)
    with pytest.raises(ValueError, match="mode='ep'"):
        _layer(mode="ep")
    with pytest.raises(ValueError, match="dp_routing='hash'"):
        _layer(mode="dp", dp_routing="hash")
    with pytest.raises(ValueError, match="rank=2 world_size=2"):
        _layer(rank=2, world_size=2)
    with pytest.raises(ValueError, match="pass group="):
        _layer(world_size=2, reduce_results=True)


def test_forward_errors():
    layer = _layer()
    with pytest.raises(ValueError, match="hidden_size=16"):
        layer(torch.randn(3, H + 1))
    with pytest.raises(ValueError, match=r"router_logits has shape \(3, 2\), expected \(3, 1\)"):
        layer(torch.randn(3, H), torch.randn(3, 2))
    with pytest.raises(ValueError, match="params_dtype=torch.float64"):
        layer(torch.randn(3, H, dtype=torch.float64))


def test_use_kernel_true_without_kernel_is_an_error(monkeypatch):
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP", "0")
    sem._load_kernel.cache_clear()
    rank_config.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="use_kernel=None"):
            _layer(use_kernel=True)(torch.randn(2, H))
        assert _layer(use_kernel=None)(torch.randn(2, H)).shape == (2, H)  # CPU: torch path
    finally:
        sem._load_kernel.cache_clear()
        rank_config.cache_clear()


def test_resolve_single_expert_mode():
    assert resolve_single_expert_mode(None, environ={}) is None
    assert resolve_single_expert_mode(None, environ={"SINGLE_EXPERT_MODE": ""}) is None
    assert resolve_single_expert_mode(None, environ={"SINGLE_EXPERT_MODE": "DP"}) == "dp"
    assert resolve_single_expert_mode("tp", environ={"SINGLE_EXPERT_MODE": "dp"}) == "tp"
    assert resolve_single_expert_mode(" Dp ", environ={}) == "dp"
    with pytest.raises(ValueError, match=r"--single-expert-mode='ep'.*'tp'.*'dp'"):
        resolve_single_expert_mode("ep", environ={"SINGLE_EXPERT_MODE": "dp"})
    with pytest.raises(ValueError, match=r"environment variable SINGLE_EXPERT_MODE='x'"):
        resolve_single_expert_mode(None, environ={"SINGLE_EXPERT_MODE": "x"})


def test_resolve_reads_os_environ(monkeypatch):
    monkeypatch.setenv("SINGLE_EXPERT_MODE", "tp")
    assert resolve_single_expert_mode(None) == "tp"
    monkeypatch.delenv("SINGLE_EXPERT_MODE")
    assert resolve_single_expert_mode(None) is None
