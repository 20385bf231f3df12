"""CUDA one-launch fused MLP (csrc/) on the GPU: float64 reference, races, CUDA graphs.

Every run draws fresh random inputs (the seed is printed in a failure), outputs are
NaN-poisoned before each call, and each case repeats ``REPEATS`` times (default 50,
``SGLANG_EXT_CUDA_REPEATS``) so a missing or wrong grid barrier shows up as a wrong or NaN
output.  Skipped without CUDA; fails (not skips) when the kernel does not build there.
"""

import os

import pytest
import torch
from _mlp_cases import ELEM_TOL, REL_TOL

from sglang_ext.kernels import cuda_onelaunch
from sglang_ext.kernels.fused_mlp_ref import swiglu_mlp_ref

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

REPEATS = int(os.environ.get("SGLANG_EXT_CUDA_REPEATS", "50"))
# the four shards (30B TP1/TP8, 235B TP1/TP8) and an awkward small one
SHAPES = [(2048, 768), (2048, 96), (4096, 1536), (4096, 192), (72, 40)]
MS = (1, 2, 7, 16, 32)
SEED = int.from_bytes(os.urandom(4), "little")


def _inputs(m, hidden, inter, dtype, gen):
    x = torch.randn(m, hidden, device="cuda", generator=gen)
    w13 = torch.randn(2 * inter, hidden, device="cuda", generator=gen) / hidden**0.5
    w2 = torch.randn(hidden, inter, device="cuda", generator=gen) / inter**0.5
    return x.to(dtype), w13.to(dtype), w2.to(dtype)


def _error(out, x, w13, w2) -> str | None:
    ref = swiglu_mlp_ref(x.double(), w13.double(), w2.double())
    got = out.double()
    if not torch.isfinite(got).all():
        return f"{(~torch.isfinite(got)).sum().item()} of {got.numel()} outputs not finite"
    rel = ((got - ref).norm() / ref.norm()).item()
    atol_frac, rtol = ELEM_TOL[out.dtype]
    bad = ((got - ref).abs() > atol_frac * ref.abs().max() + rtol * ref.abs()).sum().item()
    if rel > REL_TOL[out.dtype] or bad:
        return f"rel err {rel:.2e}, {bad} elements out of tolerance"
    return None


@pytest.fixture(scope="module", autouse=True)
def _built():
    cuda_onelaunch.load()  # a build failure fails every test here, with nvcc's message


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"H{s[0]}-I{s[1]}")
def test_matches_float64_many_repeats(dtype, shape):
    hidden, inter = shape
    gen = torch.Generator(device="cuda").manual_seed(SEED + hidden + inter)
    reps = REPEATS if dtype == torch.bfloat16 else max(1, REPEATS // 5)
    failures = []
    for m in MS:
        bad = []
        for rep in range(reps):
            x, w13, w2 = _inputs(m, hidden, inter, dtype, gen)
            out = torch.full((m, hidden), float("nan"), dtype=dtype, device="cuda")
            cuda_onelaunch.fused_swiglu_mlp_cuda(x, w13, w2, out=out)
            torch.cuda.synchronize()
            msg = _error(out, x, w13, w2)
            if msg:
                bad.append(f"rep {rep}: {msg}")
        if bad:
            plan = cuda_onelaunch.plan(m, hidden, inter, dtype)
            failures.append(f"M={m} {plan}: {len(bad)}/{reps} wrong, first: {bad[0]}")
    assert not failures, f"seed {SEED} {dtype} H={hidden} I={inter}: " + "; ".join(failures)


@pytest.mark.parametrize("blocks_per_sm,ksplit_max", [(1, 0), (4, 0), (2, 1), (2, 2)])
def test_launch_shapes_agree(blocks_per_sm, ksplit_max):
    """Other grids and K-splits give the same answer within rounding (fixed-order sums)."""
    gen = torch.Generator(device="cuda").manual_seed(SEED)
    for hidden, inter in SHAPES[:4]:
        for m in (1, 7, 32):
            x, w13, w2 = _inputs(m, hidden, inter, torch.bfloat16, gen)
            out = cuda_onelaunch.fused_swiglu_mlp_cuda(
                x, w13, w2, blocks_per_sm=blocks_per_sm, ksplit_max=ksplit_max
            )
            msg = _error(out, x, w13, w2)
            assert msg is None, f"seed {SEED} H={hidden} I={inter} M={m}: {msg}"


def test_bitwise_repeatable_and_allocates_out():
    gen = torch.Generator(device="cuda").manual_seed(SEED)
    x, w13, w2 = _inputs(5, 2048, 96, torch.bfloat16, gen)
    a = cuda_onelaunch.fused_swiglu_mlp_cuda(x, w13, w2)
    b = cuda_onelaunch.fused_swiglu_mlp_cuda(x, w13, w2)
    assert a.shape == (5, 2048) and a.dtype == torch.bfloat16
    assert torch.equal(a, b), "no atomics, fixed reduction order: same inputs, same bits"


@pytest.mark.parametrize("shape", SHAPES[:4], ids=lambda s: f"H{s[0]}-I{s[1]}")
def test_cuda_graph_capture_and_replay(shape):
    hidden, inter = shape
    gen = torch.Generator(device="cuda").manual_seed(SEED + 1)
    m = 4
    x, w13, w2 = _inputs(m, hidden, inter, torch.bfloat16, gen)
    out = torch.empty(m, hidden, dtype=torch.bfloat16, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        cuda_onelaunch.fused_swiglu_mlp_cuda(x, w13, w2, out=out)  # warm-up
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(3):  # back-to-back launches in one graph
            cuda_onelaunch.fused_swiglu_mlp_cuda(x, w13, w2, out=out)
    failures = []
    for rep in range(REPEATS):
        x.copy_(_inputs(m, hidden, inter, torch.bfloat16, gen)[0])
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        msg = _error(out, x, w13, w2)
        if msg:
            failures.append(f"replay {rep}: {msg}")
    assert not failures, f"seed {SEED}: " + "; ".join(failures[:5])


def test_bad_input_names_the_problem():
    x = torch.randn(33, 2048, device="cuda", dtype=torch.bfloat16)
    w13 = torch.randn(192, 2048, device="cuda", dtype=torch.bfloat16)
    w2 = torch.randn(2048, 96, device="cuda", dtype=torch.bfloat16)
    with pytest.raises(ValueError, match="M <= 32"):
        cuda_onelaunch.fused_swiglu_mlp_cuda(x, w13, w2)
    with pytest.raises(TypeError, match="bfloat16 or float16"):
        cuda_onelaunch.fused_swiglu_mlp_cuda(x[:4].float(), w13.float(), w2.float())
