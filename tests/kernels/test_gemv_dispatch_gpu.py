"""The decode-linear dispatch (``kernels.gemv_dispatch.linear``) on a CUDA GPU, from a table
written for this GPU into a temporary folder: listed (N, K, M) run the gemv kernel (a spy
counts its launches) and match a float64 matmul within bf16 rounding, also captured in a CUDA
graph and replayed on new inputs; M above the table, unlisted shapes and strided inputs run
F.linear.  The shipped H200 table's choices are checked the same way on an H200."""

import pytest
import torch

from sglang_ext.kernels import gemv_dispatch as gd
from sglang_ext.kernels import tables

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]
N, K = 640, 512


@pytest.fixture
def spy(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "DEFAULT_DIR", tmp_path)
    gd.load_table.cache_clear()
    gd._cuda_config.cache_clear()
    name = torch.cuda.get_device_name(0)
    gd.write_table(gd.table_file(name), name, {gd.shape_key(N, K, torch.bfloat16): [
        gd.Bucket(m_max=1, config="n16k512w4s2d0"), gd.Bucket(m_max=4, config="n32k128w4s3d1"),
        gd.Bucket(m_max=8, config="cublas")]})  # fmt: skip
    calls = []
    real = gd.gemv

    def counting(*a, **kw):
        calls.append(kw["config"].name)
        return real(*a, **kw)

    monkeypatch.setattr(gd, "gemv", counting)
    yield calls
    gd.load_table.cache_clear()
    gd._cuda_config.cache_clear()


def _check(y, x, w, b=None):
    want = x.double() @ w.double().T + (0 if b is None else b.double())
    assert not torch.isnan(y).any()
    torch.testing.assert_close(y.double(), want, rtol=2e-2, atol=2e-2 * want.abs().max().item())


@pytest.mark.parametrize("m, expect", [(1, "n16k512w4s2d0"), (3, "n32k128w4s3d1"),
                                       (4, "n32k128w4s3d1"), (8, None), (9, None)])  # fmt: skip
def test_listed_shapes_run_gemv_and_match_float64(spy, m, expect):
    g = torch.Generator(device="cuda").manual_seed(m)
    x = torch.randn(m, K, device="cuda", dtype=torch.bfloat16, generator=g)
    w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16, generator=g)
    b = torch.randn(N, device="cuda", dtype=torch.bfloat16, generator=g)
    _check(gd.linear(x, w, b), x, w, b)
    assert spy == ([expect] if expect else [])


def test_unlisted_shape_and_strided_input_run_f_linear(spy):
    x = torch.randn(2, 2 * K, device="cuda", dtype=torch.bfloat16)[:, ::2]
    w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
    _check(gd.linear(x, w), x, w)
    w2 = torch.randn(N + 16, K, device="cuda", dtype=torch.bfloat16)
    _check(gd.linear(x.contiguous(), w2), x, w2)
    assert spy == []


def test_captured_in_a_cuda_graph_and_replayed_on_new_inputs(spy):
    x = torch.randn(2, K, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
    gd.linear(x, w)  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = gd.linear(x, w)
    for _ in range(3):
        x.copy_(torch.randn(2, K, device="cuda", dtype=torch.bfloat16))
        y.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        _check(y, x, w)
    assert spy == ["n32k128w4s3d1"] * 2


@pytest.mark.skipif(
    not torch.cuda.is_available() or torch.cuda.get_device_name(0) != "NVIDIA H200",
    reason="the shipped table is the H200's",
)
def test_shipped_h200_table_choices_match_float64():
    table = gd.load_table(str(gd.table_file("NVIDIA H200")))
    assert table, "no shipped H200 gemv table for this Triton"
    for key, buckets in table.items():
        n, k = (int(p.split("=")[1]) for p in key.split(",")[:2])
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16)
        for b in buckets:
            x = torch.randn(b.m_max, k, device="cuda", dtype=torch.bfloat16)
            _check(gd.linear(x, w), x, w)


@pytest.mark.parametrize("cfg", ["n16k256w4s3d1p4", "n16k128w4s4d1p8", "n4k512w4s2d0p4"])
def test_k_split_in_a_cuda_graph_matches_float64_and_is_deterministic(cfg):
    """The split over K (one launch: partials, tickets, the last program's sum) at the 30B
    o_proj shape: against float64, captured and replayed on new inputs with the output
    poisoned, every replay of the same input bit-identical, the tickets left at 0."""
    from sglang_ext.kernels.gemv import GemvConfig, gemv
    from sglang_ext.kernels.tickets import counters

    config = GemvConfig.parse(cfg)
    m = 1 if not config.use_dot else 8
    n, k = 2048, 4096
    g = torch.Generator(device="cuda").manual_seed(7)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=g)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16, generator=g)
    b = torch.randn(n, device="cuda", dtype=torch.bfloat16, generator=g)
    _check(gemv(x, w, b, config=config), x, w, b)  # eager, and compiled outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = gemv(x, w, b, config=config)
    for _ in range(3):
        x.copy_(torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=g))
        outs = []
        for _ in range(2):
            y.fill_(float("nan"))
            graph.replay()
            torch.cuda.synchronize()
            outs.append(y.clone())
        _check(y, x, w, b)
        assert torch.equal(outs[0], outs[1])
    assert not counters(x.device, 1, "gemv").any()
