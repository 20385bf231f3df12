"""GPU kernels tied to the layer and op that launched them, on hand-made Kineto traces.

The kernels run after their CPU ranges have closed (as on CUDA), so only the correlation id
of the launching runtime call can place them; the expected numbers are worked out by hand
below, not by the code under test.
"""

from __future__ import annotations

import json

import pytest

from sglang_ext.models.tiny import default_model_path
from sglang_ext.profile.analysis import gpu_attribution, rank_summary
from sglang_ext.profile.config import ProfileArgs
from sglang_ext.profile.kineto import gpu_ops
from sglang_ext.profile.launch import build_record, summary_lines
from sglang_ext.profile.report import pick_pair

MAIN, OTHER = 1, 2  # thread ids


def _x(cat, name, ts, dur, tid=MAIN, **args):
    return {"ph": "X", "cat": cat, "name": name, "ts": ts, "dur": dur, "pid": 7, "tid": tid,
            "args": args}  # fmt: skip


def _ann(name, ts, dur, tid=MAIN):
    return _x("user_annotation", name, ts, dur, tid)


def _launch(ts, corr, name="cudaLaunchKernel"):
    return _x("cuda_runtime", name, ts, 2, correlation=corr)


def _kernel(name, ts, dur, corr, cat="kernel"):
    return _x(cat, name, ts, dur, tid=0, correlation=corr)


def _eager_step(t0: float, c0: int) -> list[dict]:
    """One decode step at CPU [t0, t0 + 1000]; its kernels start after the CPU has moved on.

    layer 0 (CPU [100, 300]): qkv_proj launches k1, attention launches k2 and k3, the layer
    itself launches an NCCL all-reduce k4. GPU: k1 [400, 440], k2 [450, 520], k3 [520, 560],
    k4 [600, 650]: span 650 - 400 = 250, busy 40 + 70 + 40 + 50 = 200 of which comm 50,
    compute 150, idle 250 - 200 = 50. qkv_proj 40 us, attention 70 + 40 = 110 us.
    layer 1 (CPU [310, 500]): qkv_proj launches k5 [700, 730], expert_mlp launches k6
    [760, 860] and a memcpy [850, 870] (overlapping k6 by 10): span 870 - 700 = 170, busy
    30 + 110 = 140, idle 30. qkv_proj 30 us, expert_mlp 110 us.
    logits (CPU [600, 700]) launches k8 [900, 980]: span 80.
    The rest of the 1000 us step: 1000 - 250 - 170 - 80 = 500 us.
    """
    t, c = t0, c0
    return [
        _ann("step::decode", t, 1000),
        _ann("layer::L0", t + 100, 200),
        _ann("op::L0.qkv_proj", t + 110, 40),
        _launch(t + 120, c + 1),
        _ann("op::L0.attention", t + 160, 90),
        _launch(t + 170, c + 2),
        _launch(t + 200, c + 3),
        _launch(t + 260, c + 4),
        _ann("layer::L1", t + 310, 190),
        _ann("op::L1.qkv_proj", t + 320, 40),
        _launch(t + 330, c + 5),
        _ann("op::L1.expert_mlp", t + 370, 110),
        _launch(t + 380, c + 6),
        _launch(t + 400, c + 7, "cudaMemcpyAsync"),
        _ann("op::logits", t + 600, 100),
        _launch(t + 610, c + 8),
        _kernel("gemm_qkv", t + 400, 40, c + 1),
        _kernel("attn_decode", t + 450, 70, c + 2),
        _kernel("attn_reduce", t + 520, 40, c + 3),
        _kernel("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", t + 600, 50, c + 4),
        _kernel("gemm_qkv", t + 700, 30, c + 5),
        _kernel("fused_moe", t + 760, 100, c + 6),
        _kernel("Memcpy DtoD", t + 850, 20, c + 7, cat="gpu_memcpy"),
        _kernel("gemm_lm_head", t + 900, 80, c + 8),
    ]


EAGER = [
    *_eager_step(0, 0),
    *_eager_step(2000, 100),  # the same step again: the numbers are means, not sums
    _launch(1100, 50),  # between the steps: belongs to none
    _kernel("copy", 1200, 10, 50),
    # launched by another thread while layer 0's range is open on the main one: not layer 0's
    _x("cuda_runtime", "cudaLaunchKernel", 200, 2, tid=OTHER, correlation=60),
    _kernel("other_thread", 1300, 10, 60),
    _kernel("orphan", 500, 5, 99),  # no launch event
]

# A graph replay: one cudaGraphLaunch inside the step, no layer ranges run, two kernels.
GRAPH = [
    _ann("step::decode", 0, 1000),
    _launch(50, 20, "cudaGraphLaunch"),
    _kernel("gemm_qkv", 100, 100, 20),
    _kernel("attn_decode", 200, 60, 20),
]


def _steps(events):
    return sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "step::decode")


def test_kernels_follow_their_launch_not_their_time():
    ops, orphans = gpu_ops(EAGER)
    assert orphans == 1
    names = {(g.name, g.ts): [r.name for r in g.enclosing] for g in ops}
    assert names[("attn_decode", 450)] == ["step::decode", "layer::L0", "op::L0.attention"]
    # it runs during layer 1's CPU range [310, 500] yet was launched in layer 0
    assert names[("ncclDevKernel_AllReduce_Sum_bf16_RING_LL", 600)] == [
        "step::decode",
        "layer::L0",
    ]
    assert names[("other_thread", 1300)] == []
    assert names[("copy", 1200)] == []


def test_per_layer_and_op_sums_by_hand():
    a = gpu_attribution(EAGER, _steps(EAGER), n_layers=2, phase="decode")
    assert a["per_layer_us"] == pytest.approx([250, 170])
    assert a["per_layer_gpu"]["comm_us"] == pytest.approx([50, 0])
    assert a["per_layer_gpu"]["compute_us"] == pytest.approx([150, 140])
    assert a["per_layer_gpu"]["idle_us"] == pytest.approx([50, 30])
    assert a["ops_us"]["qkv_proj"] == pytest.approx([40, 30])
    assert a["ops_us"]["attention"] == pytest.approx([110, 0])
    assert a["ops_us"]["expert_mlp"] == pytest.approx([0, 110])
    assert a["outside_us"]["logits"] == pytest.approx(80)
    assert a["outside_us"]["other"] == pytest.approx(500)
    assert a["gpu_kernels_per_step"] == 8
    assert a["gpu_graph_kernels_per_step"] == 0
    assert a["gpu_busy_us"] == pytest.approx(200 + 140 + 80)
    assert a["gpu_unattributed_kernels"] == 1
    assert "per_layer_reason" not in a


def test_runtime_calls_on_other_thread_ids_still_attributed():
    # a trace whose runtime calls carry other thread ids than the CPU ranges (none shared)
    events = [dict(e, tid=5) if e["cat"] == "cuda_runtime" else e for e in _eager_step(0, 0)]
    a = gpu_attribution(events, _steps(events), n_layers=2, phase="decode")
    assert a["per_layer_us"] == pytest.approx([250, 170])


def test_graph_replay_gives_a_reason_not_zeros():
    a = gpu_attribution(GRAPH, _steps(GRAPH), n_layers=2, phase="decode")
    assert a["per_layer_us"] is None and a["per_layer_gpu"] is None
    assert "CUDA graph" in a["per_layer_reason"] and "--disable-cuda-graph" in a["per_layer_reason"]
    assert a["gpu_graph_kernels_per_step"] == 2
    assert a["gpu_busy_us"] == pytest.approx(160)


def _rank(tmp_path, events, name):
    trace = tmp_path / f"{name}_rank0.json"
    trace.write_text(json.dumps({"traceEvents": events}))
    s = rank_summary(trace, n_layers=2, phase="decode", gpu=True)
    return {"rank": 0, "dp_rank": 0, "trace": str(trace), "layer_names": ["l0", "l1"],
            "tokens": [[1]], "profiled_tokens": [[1]], "step_s": [0.002], "profiled_step_s":
            [0.003], "graph_step_s": [0.001], "graph_tokens": [[1]], "graph_steps": 1,
            "profiled_graph_steps": 0, "calls": [], "weight_bytes": 10,
            "server": {"model_path": str(default_model_path()), "load_format": "dummy",
                       "dtype": "bfloat16", "dtype_size": 2, "device": "cuda",
                       "attention_backend": "triton", "tp_size": 1, "dp_size": 1,
                       "enable_dp_attention": False, "disable_cuda_graph": False},
            **s}  # fmt: skip


def test_records_carry_the_attribution_or_the_reason(tmp_path):
    pargs = ProfileArgs(output_dir=str(tmp_path))
    rec = build_record(pargs, "tp", [_rank(tmp_path, EAGER, "eager")])
    m = rec["metrics"]
    assert m["per_layer_us"] == pytest.approx([250, 170])
    assert m["per_layer_comm_us"] == pytest.approx([50, 0])
    assert m["per_layer_sum_us"] == pytest.approx(420) and m["step_us"] == pytest.approx(1000)
    assert m["graph_step_wall_ms"] == pytest.approx(1.0)
    assert m["overhead_pct"] == pytest.approx(50)
    assert m["bottlenecks"][0] == {"name": "other", "us": pytest.approx(500),
                                   "share_of_step": pytest.approx(0.5)}  # fmt: skip
    text = "\n".join(summary_lines(rec))
    assert "per-layer sum 0.42 ms = 42% of the step" in text

    rec = build_record(pargs, "tp", [_rank(tmp_path, GRAPH, "graph")])
    m = rec["metrics"]
    assert m["per_layer_us"] is None and m["per_layer_compute_us"] is None
    assert m["ranks"][0]["per_layer_us"] is None
    assert "CUDA graph" in m["per_layer_reason"]
    assert "CUDA graph" in "\n".join(summary_lines(rec))
    json.dumps(rec)  # a record is JSON
    dp = json.loads(json.dumps(rec))
    dp["config"]["single_expert_mode"] = "dp"
    with pytest.raises(ValueError, match="per-layer numbers"):  # nothing to plot per layer
        pick_pair([rec, dp])
