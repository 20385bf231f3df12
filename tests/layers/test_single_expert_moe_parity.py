"""SingleExpertMoE on 1, 2 and 4 gloo ranks against HF transformers' Qwen3MoeSparseMoeBlock.

The reference is HF's block with num_experts=1, top-1, computed in this process on one
device, for norm_topk_prob True and False. Each rank loads the HF expert's gate_proj /
up_proj / down_proj through ``weight_loader`` and runs the same token batches (1, 7, 33
tokens, in that order, so dp routing state advances between calls); the sum of the ranks'
outputs must match the reference. One spawn per world size runs every case.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from sglang_ext.perf.dist_env import run_spawned
from tests._support.tiny_configs import qwen3_moe_config

H, INTER = 64, 96  # 96 divides over 1, 2 and 4 ranks
TOKENS = (1, 7, 33)
SPAWN_TIMEOUT_S = 150
# name -> layer kwargs. "kernel" cases run the Triton kernel under TRITON_INTERPRET=1 (fp32:
# the interpreter gives garbage for bf16 CPU tensors under Triton 3.3-3.6).
CASES: dict[str, dict] = {
    "tp-fp32": dict(mode="tp", dtype=torch.float32),
    "dp-random-fp32": dict(mode="dp", dp_routing="random", dtype=torch.float32),
    "dp-rr-fp32": dict(mode="dp", dp_routing="round_robin", dtype=torch.float32),
    "tp-bf16": dict(mode="tp", dtype=torch.bfloat16),
    "dp-random-bf16": dict(mode="dp", dp_routing="random", dtype=torch.bfloat16),
    "dp-rr-bf16": dict(mode="dp", dp_routing="round_robin", dtype=torch.bfloat16),
    "tp-fp32-reduce": dict(mode="tp", dtype=torch.float32, reduce_results=True),
    "dp-random-fp32-reduce": dict(
        mode="dp", dp_routing="random", dtype=torch.float32, reduce_results=True
    ),
    "tp-fp32-kernel": dict(mode="tp", dtype=torch.float32, use_kernel=True),
    "dp-rr-fp32-kernel": dict(
        mode="dp", dp_routing="round_robin", dtype=torch.float32, use_kernel=True
    ),
}
DP_CASES = [n for n, c in CASES.items() if c["mode"] == "dp"]
# (atol, rtol) per dtype. fp32: the same math as HF up to summation order (merged gate/up
# GEMM, TP partial sums added across ranks, kernel split-K): ~1e-6 on O(1) outputs.
# bf16: outputs reach |y| ~ 3.3, where one bf16 ulp is 2^-6 = 0.016; the rounded steps (GEMMs,
# silu*up, the rank sum in bf16) may land a TP/kernel result one ulp from HF's (measured:
# 1.6e-2 at 2 and 4 TP ranks, 0 in dp mode). atol + rtol*|y| then allows 1 to 4 ulps.
TOL = {torch.float32: (2e-5, 2e-5), torch.bfloat16: (2e-2, 2e-2)}
_HF_NAMES = {"w1": "gate_proj", "w3": "up_proj", "w2": "down_proj"}


# --------------------------------------------------------------------------- rank side
def _worker(rank: int, world_size: int, workdir: str) -> None:
    os.environ["TRITON_INTERPRET"] = "1"  # before anything imports triton (kernel cases)
    torch.set_num_threads(1)
    # env:// on the store run_spawned's parent holds (bound on port 0, never released)
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=60))
    from sglang_ext.layers import SingleExpertMoE

    try:
        data = torch.load(Path(workdir) / "inputs.pt")
        group = dist.new_group(list(range(world_size)), backend="gloo")
        results = {}
        for name, case in CASES.items():
            dtype = case["dtype"]
            layer = SingleExpertMoE(
                hidden_size=H,
                intermediate_size=INTER,
                mode=case["mode"],
                rank=rank,
                world_size=world_size,
                group=group,
                params_dtype=dtype,
                dp_routing=case.get("dp_routing", "random"),
                seed=1234,
                reduce_results=case.get("reduce_results", False),
                use_kernel=case.get("use_kernel", False),
            )
            for shard_id, hf_name in _HF_NAMES.items():
                param = layer.w2_weight if shard_id == "w2" else layer.w13_weight
                param.weight_loader(
                    param,
                    data[hf_name],
                    f"model.layers.0.mlp.experts.0.{hf_name}.weight",
                    shard_id=shard_id,
                    expert_id=0,
                )
            outs, sels = [], []
            for t in TOKENS:
                x = data["x"][t].to(dtype)
                outs.append(layer(x, router_logits=data["logits"][t].to(dtype)))
                sels.append(layer.last_selection.indices() if case["mode"] == "dp" else None)
            results[name] = dict(outs=outs, sels=sels, tokens_computed=layer.tokens_computed)
        torch.save(results, Path(workdir) / f"rank{rank}.pt")
        dist.barrier(group=group)
    finally:
        dist.destroy_process_group()


def _spawn(world_size: int, workdir: Path) -> None:
    """Run _worker on world_size processes: a rank that fails or dies ends the run naming
    it, one still running after SPAWN_TIMEOUT_S is named and killed (run_spawned)."""
    run_spawned(_worker, world_size, world_size, str(workdir), deadline_s=SPAWN_TIMEOUT_S)


# --------------------------------------------------------------------------- reference side
@pytest.fixture(scope="module")
def reference():
    """HF block inputs and outputs: x[T], logits[T], out[(dtype, norm_topk_prob)][T]."""
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    gen = torch.Generator().manual_seed(0)
    # scaled so pre-activations and outputs are O(1)
    weights = {
        "gate_proj": torch.randn(INTER, H, generator=gen) / H**0.5,
        "up_proj": torch.randn(INTER, H, generator=gen) / H**0.5,
        "down_proj": torch.randn(H, INTER, generator=gen) / INTER**0.5,
        "gate": torch.randn(1, H, generator=gen),
    }
    data = {"x": {}, "logits": {}, "out": {}}
    for t in TOKENS:
        data["x"][t] = torch.randn(t, H, generator=gen)
    for norm in (True, False):
        cfg = qwen3_moe_config(hidden_size=H, moe_intermediate_size=INTER, norm_topk_prob=norm)
        block = Qwen3MoeSparseMoeBlock(cfg).eval()
        with torch.no_grad():
            block.gate.weight.copy_(weights["gate"])
            for name in ("gate_proj", "up_proj", "down_proj"):
                getattr(block.experts[0], name).weight.copy_(weights[name])
        # the weights handed to weight_loader are the HF expert's own (fp32) tensors
        for name in ("gate_proj", "up_proj", "down_proj"):
            data[name] = getattr(block.experts[0], name).weight.detach().clone()
        for dtype in TOL:  # float32 first, then bfloat16 (rounded from the same fp32 weights)
            block = block.to(dtype)
            for t in TOKENS:
                with torch.no_grad():
                    out, logits = block(data["x"][t].to(dtype)[None])  # [1, T, H]
                data["out"][(dtype, norm)] = data["out"].get((dtype, norm), {})
                data["out"][(dtype, norm)][t] = out[0]
                if dtype == torch.float32:
                    data["logits"][t] = logits  # [T, 1]
    return data


@pytest.fixture(scope="module", params=[1, 2, 4], ids=lambda w: f"world{w}")
def run(request, reference, tmp_path_factory):
    world_size = request.param
    workdir = tmp_path_factory.mktemp(f"single_expert_w{world_size}")
    torch.save({k: v for k, v in reference.items() if k != "out"}, workdir / "inputs.pt")
    _spawn(world_size, workdir)
    return world_size, [torch.load(workdir / f"rank{r}.pt") for r in range(world_size)]


# --------------------------------------------------------------------------- checks
@pytest.mark.parametrize("norm_topk_prob", [True, False], ids=["norm", "nonorm"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_hf(run, reference, case, norm_topk_prob):
    world_size, results = run
    dtype = CASES[case]["dtype"]
    atol, rtol = TOL[dtype]
    reduced = CASES[case].get("reduce_results", False)
    for i, t in enumerate(TOKENS):
        ref = reference["out"][(dtype, norm_topk_prob)][t].float()
        outs = [res[case]["outs"][i] for res in results]
        assert all(o.dtype == dtype and o.shape == (t, H) for o in outs)
        if reduced:  # every rank holds the full, already all-reduced output
            for r, o in enumerate(outs):
                torch.testing.assert_close(
                    o.float(),
                    ref,
                    atol=atol,
                    rtol=rtol,
                    msg=lambda m, r=r, t=t: f"{case} rank {r}/{world_size}, T={t}: {m}",
                )
        else:  # the caller's all-reduce: sum of the ranks' outputs, in their dtype
            total = torch.stack(outs).sum(0).float()
            torch.testing.assert_close(
                total,
                ref,
                atol=atol,
                rtol=rtol,
                msg=lambda m, t=t: f"{case} summed over {world_size} ranks, T={t}: {m}",
            )


@pytest.mark.parametrize("case", DP_CASES)
def test_dp_computes_every_token_once(run, case):
    world_size, results = run
    for i, t in enumerate(TOKENS):
        counts = torch.zeros(t, dtype=torch.int64)
        for r, res in enumerate(results):
            sel = res[case]["sels"][i]
            counts.index_add_(0, sel, torch.ones_like(sel))
            if not CASES[case].get("reduce_results", False):
                # rows of tokens routed elsewhere are exactly zero in this rank's output
                off = torch.ones(t, dtype=torch.bool)
                off[sel] = False
                assert torch.count_nonzero(res[case]["outs"][i][off]) == 0, (case, r, t)
        assert torch.equal(counts, torch.ones(t, dtype=torch.int64)), f"{case} T={t}: {counts}"
        if CASES[case].get("dp_routing") == "round_robin":
            sizes = [len(res[case]["sels"][i]) for res in results]
            assert max(sizes) - min(sizes) <= 1, f"{case} T={t} unbalanced: {sizes}"
    computed = [res[case]["tokens_computed"] for res in results]
    assert sum(computed) == sum(TOKENS), f"{case}: tokens_computed per rank {computed}"


def test_tp_every_rank_computes_every_token(run):
    _, results = run
    for case in (n for n, c in CASES.items() if c["mode"] == "tp"):
        assert [res[case]["tokens_computed"] for res in results] == [sum(TOKENS)] * len(results)
