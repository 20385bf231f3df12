"""v4 one-launch fused MLP on the GPU: many repeats with fresh inputs to catch races.

Each case runs ``REPEATS`` times with new random x and weights (made on the GPU), a
NaN-poisoned ``out`` and NaN-poisoned partials (``poison_partials=True``), and is checked against a float64 reference
(computed on the GPU); the counters must be back to zero after every call.  Skipped without
CUDA.  ``SGLANG_EXT_V4_REPEATS`` changes the repeat count (default 50).
"""

import os

import pytest
import torch
from _mlp_cases import ELEM_TOL, REL_TOL

from sglang_ext.kernels.experimental import fused_mlp_onelaunch
from sglang_ext.kernels.fused_mlp_configs import MlpLaunchConfig
from sglang_ext.kernels.fused_mlp_ref import swiglu_mlp_ref

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

REPEATS = int(os.environ.get("SGLANG_EXT_V4_REPEATS", "50"))
SHAPES = [(2048, 96), (4096, 192), (2048, 768), (4096, 1536), (1000, 200), (72, 40)]
MS = (1, 2, 3, 4, 5, 7, 8, 16, 33, 64)
FORCED = {
    "heuristic": None,
    "ksplit7_bm16": MlpLaunchConfig(
        block_m=16, block_i=16, block_k=128, block_n=32, block_k2=32, k_splits=7, one_launch=True
    ),
    "ksplit_all_bm64": MlpLaunchConfig(
        block_m=64, block_i=32, block_k=64, block_n=128, k_splits=999, one_launch=True
    ),
}


def _inputs(m, hidden, inter, dtype, gen):
    x = torch.randn(m, hidden, device="cuda", generator=gen)
    w13 = torch.randn(2 * inter, hidden, device="cuda", generator=gen) / hidden**0.5
    w2 = torch.randn(hidden, inter, device="cuda", generator=gen) / inter**0.5
    return x.to(dtype), w13.to(dtype), w2.to(dtype)


def _error(out, x, w13, w2) -> str | None:
    ref = swiglu_mlp_ref(x.double(), w13.double(), w2.double())
    got = out.double()
    if not torch.isfinite(got).all():
        return f"{(~torch.isfinite(got)).sum().item()} outputs not finite"
    rel = ((got - ref).norm() / ref.norm()).item()
    atol_frac, rtol = ELEM_TOL[out.dtype]
    bad = ((got - ref).abs() > atol_frac * ref.abs().max() + rtol * ref.abs()).sum().item()
    if rel > REL_TOL[out.dtype] or bad:
        return f"rel err {rel:.2e}, {bad} elements out of tolerance"
    return None


SYNC: dict[int, torch.Tensor] = {}


def _sync() -> torch.Tensor:
    """One counter buffer for the whole module: each call must leave it zero for the next."""
    return SYNC.setdefault(0, fused_mlp_onelaunch.sync_buffer("cuda"))


def _counters_clean() -> bool:
    return not _sync().any()


def _v4(x, w13, w2, out=None, config=None):
    return fused_mlp_onelaunch.fused_swiglu_mlp_one_launch(
        x, w13, w2, out=out, config=config, sync=_sync(), poison_partials=True
    )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"H{s[0]}-I{s[1]}")
@pytest.mark.parametrize("cfg_name", list(FORCED))
def test_v4_many_repeats(dtype, shape, cfg_name):
    hidden, inter = shape
    seed = 1000 * list(FORCED).index(cfg_name) + hidden + inter
    gen = torch.Generator(device="cuda").manual_seed(seed)
    nsm = torch.cuda.get_device_properties(0).multi_processor_count
    reps = REPEATS if dtype == torch.bfloat16 else max(1, REPEATS // 5)
    failures = []
    for m in MS:
        cfg = FORCED[cfg_name] or fused_mlp_onelaunch.one_launch_config(m, hidden, inter, nsm)
        bad = []
        for rep in range(reps):
            x, w13, w2 = _inputs(m, hidden, inter, dtype, gen)
            out = torch.full((m, hidden), float("nan"), dtype=dtype, device="cuda")
            _v4(x, w13, w2, out=out, config=cfg)
            torch.cuda.synchronize()
            msg = _error(out, x, w13, w2)
            if not _counters_clean():
                msg = (msg or "") + " counters not reset"
            if msg:
                bad.append(f"rep {rep}: {msg}")
        if bad:
            failures.append(f"M={m}: {len(bad)}/{reps} wrong, first: {bad[0]}")
    assert not failures, f"v4 {cfg_name} {dtype} H={hidden} I={inter}: " + "; ".join(failures)


def test_v4_bitwise_repeatable_and_graph_replay():
    hidden, inter, m = 2048, 96, 4
    gen = torch.Generator(device="cuda").manual_seed(5)
    x, w13, w2 = _inputs(m, hidden, inter, torch.bfloat16, gen)
    cfg = fused_mlp_onelaunch.one_launch_config(m, hidden, inter)
    a = _v4(x, w13, w2, config=cfg)
    b = _v4(x, w13, w2, config=cfg)
    assert torch.equal(a, b), "no data atomics: the same inputs must give the same bits"
    out = torch.empty(m, hidden, dtype=torch.bfloat16, device="cuda")
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(3):  # three calls in one graph share the counters
            _v4(x, w13, w2, out=out, config=cfg)
    failures = []
    for rep in range(REPEATS):
        x.copy_(_inputs(m, hidden, inter, torch.bfloat16, gen)[0])
        out.fill_(float("nan"))
        g.replay()
        torch.cuda.synchronize()
        msg = _error(out, x, w13, w2)
        if msg or not _counters_clean():
            failures.append(f"replay {rep}: {msg} clean={_counters_clean()}")
    assert not failures, "; ".join(failures[:5])
