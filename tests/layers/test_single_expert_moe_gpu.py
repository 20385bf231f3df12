"""SingleExpertMoE on CUDA: the table default, torch, the Triton and the CUDA one-launch
kernels, and CUDA graph capture in dp mode.

Ranks are simulated in one process (no collectives: ``reduce_results=False``), so one GPU
suffices. The reference is the float64 SwiGLU MLP (``fused_mlp_ref``) on the full weights.
"""

from __future__ import annotations

import pytest
import torch

from sglang_ext.kernels.fused_mlp_ref import swiglu_mlp_ref
from sglang_ext.layers import SingleExpertMoE
from sglang_ext.layers import single_expert_moe as sem

pytestmark = pytest.mark.gpu  # tests/conftest.py skips it without CUDA

H, INTER = 1024, 768  # Qwen3-MoE-like expert width
# bf16 outputs are O(1); a bf16 ulp at 1-2 is 2^-7..2^-6, and kernel (split-K, fp32
# accumulate) and cuBLAS both round the intermediate to bf16 before the down projection.
ATOL = RTOL = 3e-2


def _setup(world_size, mode, dp_routing="round_robin", use_kernel=None):
    gen = torch.Generator().manual_seed(0)
    w1 = torch.randn(INTER, H, generator=gen) / H**0.5
    w3 = torch.randn(INTER, H, generator=gen) / H**0.5
    w2 = torch.randn(H, INTER, generator=gen) / INTER**0.5
    layers = []
    for rank in range(world_size):
        with torch.device("cuda"):
            layer = SingleExpertMoE(
                hidden_size=H,
                intermediate_size=INTER,
                mode=mode,
                rank=rank,
                world_size=world_size,
                params_dtype=torch.bfloat16,
                dp_routing=dp_routing,
                use_kernel=use_kernel,
            )
        for shard_id, w in (("w1", w1), ("w3", w3), ("w2", w2)):
            param = layer.w2_weight if shard_id == "w2" else layer.w13_weight
            param.weight_loader(param, w.cuda(), f"experts.0.{shard_id}", shard_id, 0)
        layers.append(layer)

    def reference(x):  # bf16 weights, float64 math
        w13 = torch.cat([w1, w3]).to(torch.bfloat16).double().cuda()
        return swiglu_mlp_ref(x.double(), w13, w2.to(torch.bfloat16).double().cuda())

    return layers, reference


PATHS = [None, False, "triton_v2", "cuda_onelaunch"]  # table default, torch, forced kernels
CASES = [
    (k, t) for k in PATHS for t in (1, 7, 32, 33, 1024) if not (k == "cuda_onelaunch" and t > 32)
]


@pytest.mark.parametrize("use_kernel,tokens", CASES, ids=lambda v: str(v))
@pytest.mark.parametrize("mode,world_size", [("tp", 1), ("tp", 2), ("dp", 2)])
def test_cuda_paths_match_reference(use_kernel, mode, world_size, tokens):
    if isinstance(use_kernel, str):
        assert sem._load_kernel(use_kernel, "cuda:0") is not None, f"{use_kernel} not usable"
    layers, reference = _setup(world_size, mode, use_kernel=use_kernel)
    x = torch.randn(tokens, H, device="cuda", dtype=torch.bfloat16)
    total = sum(layer(x).float() for layer in layers)
    torch.testing.assert_close(total.double(), reference(x), atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("use_kernel", PATHS, ids=str)
@pytest.mark.parametrize("dp_routing", ["random", "round_robin"])
def test_dp_cuda_graph_capture_is_static_round_robin(dp_routing, use_kernel):
    world_size, tokens = 2, 9
    layers, reference = _setup(world_size, "dp", dp_routing=dp_routing, use_kernel=use_kernel)
    static_x = torch.randn(tokens, H, device="cuda", dtype=torch.bfloat16)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):  # eager warm-up (allocates kernel workspaces)
        for layer in layers:
            layer(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    counted = [layer.tokens_computed for layer in layers]
    graphs, outs = [], []
    for layer in layers:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outs.append(layer(static_x))
        graphs.append(graph)
    assert [layer.tokens_computed for layer in layers] == counted  # capture is not counted
    for _ in range(2):  # replays with fresh inputs
        static_x.copy_(torch.randn(tokens, H, device="cuda", dtype=torch.bfloat16))
        for graph in graphs:
            graph.replay()
        torch.cuda.synchronize()
        for rank, out in enumerate(outs):  # rank r owns rows r::2 in every replay
            off = torch.ones(tokens, dtype=torch.bool, device="cuda")
            off[rank::world_size] = False
            assert torch.count_nonzero(out[off]) == 0
        total = sum(out.float() for out in outs)
        torch.testing.assert_close(total.double(), reference(static_x), atol=ATOL, rtol=RTOL)
