"""Fused SwiGLU MLP on the GPU (bf16, fp16) vs the float64 reference; skipped without CUDA."""

import pytest
import torch
from _mlp_cases import check_against_ref, make_inputs

from sglang_ext.kernels.fused_mlp import fused_swiglu_mlp
from sglang_ext.kernels.fused_mlp_configs import MlpLaunchConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# (H, I): the Qwen3-30B-A3B and -235B-A22B expert shards at TP=8 and TP=1, plus awkward sizes
SHAPES = [(2048, 96), (4096, 192), (2048, 768), (1000, 200), (72, 40)]
FORCED = {
    "auto": None,
    "ksplit": MlpLaunchConfig(block_m=32, block_i=32, block_k=64, block_n=32, k_splits=4),
    "ksplit_small": MlpLaunchConfig(
        block_m=16, block_i=16, block_k=256, block_n=16, block_k2=128, k_splits=7
    ),
    "large": MlpLaunchConfig(
        block_m=128, block_i=64, block_k=64, block_n=128, num_warps=8, num_stages=3
    ),
}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"H{s[0]}-I{s[1]}")
@pytest.mark.parametrize("path", list(FORCED))
def test_gpu_matches_float64_reference(dtype, shape, path):
    hidden, inter = shape
    failures = []
    for seed, m in enumerate((1, 7, 33, 222, 1, 1500)):  # M=1 again after 222: clean workspace
        x, w13, w2 = make_inputs(m, hidden, inter, dtype, device="cuda", seed=seed)
        out = torch.full((m, hidden), float("nan"), dtype=dtype, device="cuda")
        fused_swiglu_mlp(x, w13, w2, out=out, config=FORCED[path])
        torch.cuda.synchronize()
        msg = check_against_ref(out, x, w13, w2)
        if msg:
            failures.append(f"M={m}: {msg}")
    assert not failures, f"{path} {dtype} H={hidden} I={inter}: " + "; ".join(failures)


def test_gpu_repeatable_and_allocates_out():
    x, w13, w2 = make_inputs(5, 2048, 96, torch.bfloat16, device="cuda", seed=99)
    a = fused_swiglu_mlp(x, w13, w2)
    b = fused_swiglu_mlp(x, w13, w2)
    assert a.shape == (5, 2048) and a.dtype == torch.bfloat16
    assert torch.equal(a, b), "no atomics: the same inputs must give the same bits"
    assert check_against_ref(a, x, w13, w2) is None


def test_gpu_cuda_graph_replay_matches():
    x, w13, w2 = make_inputs(4, 2048, 96, torch.bfloat16, device="cuda", seed=7)
    out = torch.empty(4, 2048, dtype=torch.bfloat16, device="cuda")
    fused_swiglu_mlp(x, w13, w2, out=out)  # warm-up: compile, workspace
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fused_swiglu_mlp(x, w13, w2, out=out)
    for seed in range(3):  # new data each replay
        x.copy_(make_inputs(4, 2048, 96, torch.bfloat16, device="cuda", seed=100 + seed)[0])
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        assert check_against_ref(out, x, w13, w2) is None, f"replay {seed}"
