"""The one-launch decode attention on a CUDA GPU inside a CUDA graph, as sglang's decode
graphs replay it: static buffers, each replay on new q/k/v, new sequence lengths and split
counts, with NaN in the split buffers and the new tokens' cache rows; against the plain-torch
reference (``decode_attention_ref``: sglang's three steps composed) at the Qwen3-30B-A3B and
235B-A22B heads (bf16) and float64 cases of ``_standin_cases`` (``test_standin_kernels_gpu``)."""

import pytest
import torch
from _standin_cases import ATTN_TOL, rope_cache

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.fixture(params=[False, True], ids=["plain", "pdl"])
def pdl_on(request, monkeypatch):
    """Launches in plain stream order and with programmatic dependent launch (SGLANG_EXT_PDL)."""
    from sglang_ext.serving.config import rank_config

    monkeypatch.delenv("SGLANG_EXT_CONFIG", raising=False)
    monkeypatch.setenv("SGLANG_EXT_PDL", "1" if request.param else "0")
    rank_config.cache_clear()
    yield request.param
    rank_config.cache_clear()


@pytest.mark.parametrize("bsz", [1, 8, 32])
@pytest.mark.parametrize("hq,hk", [(32, 4), (64, 4)])
def test_graph_replays_match_the_reference(bsz, hq, hk, pdl_on):
    from sglang_ext.kernels.decode_attention import decode_attention, decode_attention_ref, tickets
    from sglang_ext.kernels.decode_attention_launch import stage1_config

    dev, dt, hd, max_splits, eps, max_len = "cuda", torch.bfloat16, 128, 8, 1e-6, 700
    slots = bsz * max_len + 1
    g = torch.Generator().manual_seed(bsz * 1000 + hq)
    k_cache = torch.randn(slots, hk, hd, generator=g).to(dt).to(dev)
    v_cache = torch.randn(slots, hk, hd, generator=g).to(dt).to(dev)
    qkv = torch.empty(bsz, (hq + 2 * hk) * hd, dtype=dt, device=dev)
    qw = (torch.rand(hd, generator=g) + 0.5).to(dt).to(dev)
    kw = (torch.rand(hd, generator=g) + 0.5).to(dt).to(dev)
    cache = rope_cache(max_len, hd, 1e6).to(dev)
    pos = torch.zeros(bsz, dtype=torch.int64, device=dev)
    loc = torch.zeros(bsz, dtype=torch.int64, device=dev)
    indptr = torch.zeros(bsz + 1, dtype=torch.int32, device=dev)
    indices = torch.zeros(bsz * max_len, dtype=torch.int32, device=dev)
    splits = torch.ones(bsz, dtype=torch.int32, device=dev)
    mid_o = torch.empty(bsz, hq, max_splits, hd, device=dev)
    mid_lse = torch.empty(bsz, hq, max_splits, device=dev)
    ticket = tickets(torch.device(dev, torch.cuda.current_device()), bsz * hk)
    q, k, v = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
    bn, warps, stages = stage1_config(bsz, hq // hk, hd, k_cache.device)

    def fill(seed):
        g = torch.Generator().manual_seed(seed)
        lens = torch.randint(1, max_len, (bsz,), generator=g)
        if seed == 1:
            lens[0] = 529  # the decode_budget context
        perm = torch.randperm(slots - 1, generator=g)[: int(lens.sum())] + 1
        indptr.copy_(torch.cat([torch.zeros(1), lens.cumsum(0)]).to(torch.int32))
        indices[: perm.numel()].copy_(perm.to(torch.int32))
        loc.copy_(perm[lens.cumsum(0) - 1])
        pos.copy_(lens - 1)
        splits.copy_(torch.randint(1, max_splits + 1, (bsz,), generator=g).to(torch.int32))
        qkv.copy_((torch.randn(qkv.shape, generator=g) * 3).to(dt))
        mid_o.fill_(float("nan"))
        mid_lse.fill_(float("nan"))
        k_cache[loc] = float("nan")
        v_cache[loc] = float("nan")
        kc, vc = k_cache.clone(), v_cache.clone()
        want = decode_attention_ref(pos, q, k, v, qw, kw, eps, cache, kc, vc, loc, indptr,
                                    indices, hd**-0.5)  # fmt: skip
        return want, kc, vc

    def run():
        return decode_attention(pos, q, k, v, qw, kw, eps, cache, k_cache, v_cache, loc,
                                indptr, indices, splits, mid_o, mid_lse, hd**-0.5,
                                ticket=ticket, block_n=bn, num_warps=warps,
                                num_stages=stages)  # fmt: skip

    fill(0)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        run()  # compile outside the graph
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = run()
    for seed in (1, 2, 3):
        want, kc, vc = fill(seed)
        graph.replay()
        torch.cuda.synchronize()
        got = out.float()
        assert not torch.isnan(got).any(), f"replay {seed}: NaN in the output"
        torch.testing.assert_close(got, want.float(), **ATTN_TOL[dt],
                                   msg=lambda m, s=seed: f"replay {s}: {m}")  # fmt: skip
        torch.testing.assert_close(k_cache.float(), kc.float(), **ATTN_TOL[dt])
        assert torch.equal(v_cache, vc), f"replay {seed}: value cache"
        assert int(ticket[: bsz * hk].count_nonzero()) == 0, "counters not reset"
