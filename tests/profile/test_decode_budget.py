"""decode_budget's record, floor and kernel-count logic on a hand-made Kineto trace."""

from __future__ import annotations

import json

import pytest

from sglang_ext.profile.budget import BudgetArgs, budget_record
from sglang_ext.profile.decode_budget import (
    budget_metrics,
    decode_kernel_stats,
    floor_ms,
    gpu_folder,
    kv_bytes_per_step,
)


def _x(cat, name, ts, dur, **args):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "args": args}


# Two decode steps. Step 0 (CPU range [0, 100]) launches three kernels one by one:
# [10, 30], [20, 40] (they overlap: union [10, 40]) and [50, 60]: busy 30 + 10 = 40 us,
# span 100. Step 1 (CPU range [200, 300]) replays a CUDA graph (one cudaGraphLaunch,
# correlation 9) of three kernels [220, 240], [240, 250], [330, 340]: busy 40, and the last
# kernel ends after the CPU range, so the span is 340 - 200 = 140. A kernel launched between
# the steps (t = 150) and one with no launch event belong to no step.
EVENTS = [
    _x("user_annotation", "step::decode", 0, 100),
    _x("user_annotation", "step::decode", 200, 100),
    _x("cuda_runtime", "cudaLaunchKernel", 5, 1, correlation=1),
    _x("cuda_runtime", "cudaLaunchKernel", 6, 1, correlation=2),
    _x("cuda_runtime", "cudaLaunchKernel", 7, 1, correlation=3),
    _x("kernel", "rmsnorm", 10, 20, correlation=1),
    _x("kernel", "gemm", 20, 20, correlation=2),
    _x("kernel", "silu", 50, 10, correlation=3),
    _x("cuda_runtime", "cudaGraphLaunch", 210, 2, correlation=9),
    _x("kernel", "gemm", 220, 20, correlation=9),
    _x("kernel", "attn", 240, 10, correlation=9),
    _x("kernel", "gemm", 330, 10, correlation=9),
    _x("cuda_runtime", "cudaLaunchKernel", 150, 1, correlation=11),
    _x("kernel", "copy", 160, 5, correlation=11),
    _x("kernel", "orphan", 20, 5, correlation=99),
    {"ph": "i", "cat": "cpu_instant_event", "name": "x", "ts": 1},
]


def test_kernel_count_busy_and_span_by_hand():
    s = decode_kernel_stats(EVENTS)
    assert [(r["kernels"], r["busy_us"], r["span_us"]) for r in s["steps"]] == [
        (3, 40, 100),
        (3, 40, 140),
    ]
    assert s["kernels_per_step"] == 3
    assert s["gpu_busy_frac"] == pytest.approx(80 / 240)
    assert s["step_span_ms"] == pytest.approx(0.120)
    # by name, per step (2 steps), decode steps only (copy between the steps and the orphan
    # are not counted): gemm 20 + 20 + 10 = 50 us in 3 launches, rmsnorm 20, attn and silu 10
    got = [(k["name"], k["per_step"], k["us_per_step"]) for k in s["top_kernels"]]
    assert got[0] == ("gemm", 1.5, 25.0)
    assert got[1] == ("rmsnorm", 0.5, 10.0)
    assert sorted(got[2:]) == [("attn", 0.5, 5.0), ("silu", 0.5, 5.0)]
    assert [k["name"] for k in decode_kernel_stats(EVENTS, top=1)["top_kernels"]] == ["gemm"]


def test_no_step_range_is_an_error():
    with pytest.raises(ValueError, match="step::decode"):
        decode_kernel_stats([e for e in EVENTS if e["cat"] != "user_annotation"])


def test_floor_of_the_30b_shape_by_hand():
    # Qwen3-30B-A3B one-expert KV: 48 layers, 4 KV heads of 128, bf16; batch 8 at context 528:
    # 2 (K, V) * 48 * 4 * 128 * 2 B = 98,304 B per token; * 8 * 528 = 415,236,096 B
    kv = kv_bytes_per_step(
        batch=8, context_len=528, layers=48, kv_heads=4, head_dim=128, dtype_size=2
    )
    assert kv == 415_236_096
    # 3.5 GB of weights + that KV over 4.25 TB/s = 3,915,236,096 / 4.25e12 s = 0.92123 ms
    assert floor_ms(3.5e9, kv, 4250.0) == pytest.approx(0.921232, rel=1e-5)
    with pytest.raises(ValueError, match="bandwidth"):
        floor_ms(1.0, 0.0, 0.0)


def test_record_from_hand_made_rows(tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"traceEvents": EVENTS}))
    bargs = BudgetArgs(input_len=512, output_len=5, batch_sizes=[2])
    facts = {"layers": 2, "kv_heads": 4, "head_dim": 128, "dtype_size": 2, "dtype": "bfloat16",
             "weight_bytes": 1e9, "copy_bw_gbps": 1000.0, "attention_backend": "triton",
             "sampling_backend": "pytorch", "cuda_graph_max_bs": 2,
             "disable_cuda_graph": False, "enable_torch_compile": False,
             "triton_attention_num_kv_splits": 8, "triton_attention_static_kv_splits": True,
             "standin_impl": "triton", "kernel_tables": ["decode_attention"],
             "graph_metadata": False, "pdl": True, "fused_norm": False,
             "fused_attention": False, "fused_inputs": False}  # fmt: skip
    row = {"batch_size": 2, "decode_s": [0.004, 0.002, 0.003, 0.010], "prefill_s": 0.05,
           "stats": decode_kernel_stats(EVENTS), "top_kernels": [], "trace": str(trace),
           "graph_replay_s": [0.001, 0.0025, 0.002],
           "host_calls_us": {"decode": 900.0, "forward": 300.0},
           "host_calls_step_s": [0.004, 0.005, 0.003]}  # fmt: skip
    rec = budget_record("qwen3-30b-a3b-1e", bargs, facts, row)
    assert rec["schema"] == "sglang_ext.decode_budget/1"
    assert rec["config"]["preset"] == "qwen3-30b-a3b-1e" and rec["config"]["batch_size"] == 2
    assert rec["config"]["triton_attention_num_kv_splits"] == 8  # a flag that moves the step
    assert rec["config"]["triton_attention_static_kv_splits"] is True  # and the env var
    assert rec["config"]["kernel_tables"] == ["decode_attention"]  # no gemv table: cuBLAS
    assert rec["config"]["graph_metadata"] is False  # SGLANG_EXT_GRAPH_METADATA=0
    assert rec["config"]["pdl"] is True  # the facts' value, not the CPU's (off)
    assert rec["config"]["fused_norm"] is False  # the facts' value, not the default (on)
    assert rec["config"]["fused_attention"] is False  # likewise
    assert rec["config"]["fused_inputs"] is False  # likewise
    m = rec["metrics"]
    # 4 decode steps: step i attends 512 (prompt) + 1 (prefill token) + i + 1 tokens;
    # mean context = 513 + 1.5 + 1 = 515.5; KV = 2 * 2 * 4 * 128 * 2 * 2 * 515.5 = 4,222,976 B
    assert rec["config"]["mean_context_len"] == 515.5
    assert m["kv_bytes_per_step"] == 4_222_976
    assert m["floor_ms"] == pytest.approx((1e9 + 4_222_976) / 1e12 * 1e3)
    assert m["decode_step_ms"] == pytest.approx(3.5)  # median of 4, 2, 3, 10 ms
    assert m["ratio_to_floor"] == pytest.approx(3.5 / m["floor_ms"])
    assert m["prefill_ms"] == pytest.approx(50.0)
    assert m["kernels_per_layer_step"] == 1.5  # 3 kernels per step over 2 layers
    assert m["gpu_busy_frac"] == pytest.approx(1 / 3)
    # the graph replays: median 2 ms; the step's other 1.5 ms is outside the graph; the
    # steps' kernels are busy 40 us each (by hand above), 2% of a 2 ms replay
    assert m["graph_replay_ms"] == pytest.approx(2.0)
    assert m["host_ms_per_step"] == pytest.approx(1.5)
    assert m["graph_busy_frac"] == pytest.approx(0.040 / 2.0)
    # the host calls' run: its per-call times as given, and the median of its own steps
    assert m["host_calls_us"] == {"decode": 900.0, "forward": 300.0}
    assert m["host_calls_step_ms"] == pytest.approx(4.0)
    # an eager batch (no graph) has no split, rather than a made-up one
    eager = budget_record("qwen3-30b-a3b-1e", bargs, facts, {**row, "graph_replay_s": None})
    assert [eager["metrics"][k] for k in ("graph_replay_ms", "host_ms_per_step")] == [None, None]


def test_budget_metrics_rejects_nothing_silently():
    stats = {"kernels_per_step": 65.0, "gpu_busy_frac": 0.5, "step_span_ms": 9.0}
    m = budget_metrics(decode_s=[0.0091], prefill_s=0.1, stats=stats, layers=48,
                       weight_bytes=3.5e9, kv_bytes=0.0, copy_bw_gbps=4250.0)  # fmt: skip
    # the measurement: 9.1 ms against 3.5 GB / 4.25 TB/s = 0.82 ms -> about 11x
    assert m["floor_ms"] == pytest.approx(0.8235, rel=1e-3)
    assert m["ratio_to_floor"] == pytest.approx(11.05, rel=1e-3)
    assert m["kernels_per_layer_step"] == pytest.approx(65 / 48)


@pytest.mark.parametrize(
    ("name", "folder"),
    [("NVIDIA H200", "h200"), ("NVIDIA H100 80GB HBM3", "h100"), ("cpu", "cpu")],
)
def test_gpu_folder(name, folder):
    assert gpu_folder(name) == folder


@pytest.mark.gpu
def test_graph_replays_time_the_padded_batch_graph_on_the_gpu():
    """``_graph_replays`` replays the graph sglang would pad the batch to (3 -> 4 here) and
    its times agree with triton's do_bench of the same replay; None past the largest graph."""
    from types import SimpleNamespace

    import torch

    from sglang_ext.perf.timing import median, median_us
    from sglang_ext.profile.budget import _graph_replays

    x = torch.randn(4096, 4096, device="cuda")
    out = torch.zeros(1, device="cuda")
    graphs = {}
    for bs in (1, 2, 4):
        torch.matmul(x, x)
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(bs):  # bs matmuls: the graphs differ in time
                y = torch.matmul(x, x)
            out.fill_(bs)
        graphs[bs] = g
    mr = SimpleNamespace(cuda_graph_runner=SimpleNamespace(capture_bs=[1, 2, 4], graphs=graphs))
    times = _graph_replays(mr, 3, torch.device("cuda"))
    torch.cuda.synchronize()
    assert out.item() == 4 and y is not None
    want_ms = median_us(graphs[4].replay, 25, 100) / 1e3
    got_ms = median(times) * 1e3
    assert got_ms == pytest.approx(want_ms, rel=0.25)
    assert _graph_replays(mr, 5, torch.device("cuda")) is None
    assert _graph_replays(SimpleNamespace(cuda_graph_runner=None), 1, "cuda") is None
