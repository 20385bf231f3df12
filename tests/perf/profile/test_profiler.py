"""Profiler: every decoder layer of a tiny Qwen3 and its communication on 2 gloo ranks;
trace analysis on a synthetic GPU trace with hand-computed overlap."""

import json
import time

import pytest
import torch

from sglang_ext.perf.dist_env import spawn_ranks
from sglang_ext.perf.profile.profiler import ProfileConfig, label_modules, profile_model
from sglang_ext.perf.profile.trace_analysis import analyze_trace, comm_kind
from tests._support.tiny_configs import qwen3_config

B, T, H, LAYERS, ITERS = 2, 5, 32, 3, 2


def _tiny_qwen3():
    from transformers import Qwen3ForCausalLM

    torch.manual_seed(0)
    cfg = qwen3_config(
        vocab_size=64, hidden_size=H, intermediate_size=64, num_hidden_layers=LAYERS, head_dim=8
    )
    return Qwen3ForCausalLM(cfg).eval()


def _worker(rank, group, device, out_dir):
    import torch.distributed as dist

    model = _tiny_qwen3()
    for layer in model.model.layers:  # TP-style: all-reduce each layer's hidden states
        layer.register_forward_hook(lambda _m, _a, o: dist.all_reduce(o[0], group=group))
    ids = torch.randint(0, 64, (B, T))

    def step():
        with torch.no_grad():
            model(ids)

    res = profile_model(
        model, step, ProfileConfig(name="tiny", out_dir=out_dir, iters=ITERS, warmup=1), rank=rank
    )
    with open(f"{out_dir}/res{rank}.json", "w") as f:
        json.dump(res, f)


def test_two_rank_qwen3(tmp_path):
    spawn_ranks(_worker, 2, str(tmp_path))
    for rank in range(2):
        res = json.loads((tmp_path / f"res{rank}.json").read_text())
        trace = tmp_path / f"tiny_rank{rank}.json"
        assert res["trace"] == str(trace) and json.loads(trace.read_text())["traceEvents"]
        want = [f"model.layers.{i}" for i in range(LAYERS)]
        assert res["labelled_layers"] == want
        assert list(res["layers"]) == want
        assert all(v["count"] == ITERS and v["total_us"] > 0 for v in res["layers"].values())
        for i in range(LAYERS):
            for child in ("self_attn", "mlp", "input_layernorm", "post_attention_layernorm"):
                assert res["ops"][f"model.layers.{i}.{child}"]["count"] == ITERS
        ar = res["comm"]["all_reduce"]
        assert ar["count"] == LAYERS * ITERS
        assert ar["bytes"] == LAYERS * ITERS * B * T * H * 4  # fp32 hidden states
        assert ar["time_us"] > 0 and ar["bw_gbps"] == pytest.approx(
            ar["bytes"] / ar["time_us"] / 1e3
        )
        b = res["breakdown"]
        assert b["comm_us"] > 0 and b["compute_us"] > 0 and b["span_us"] >= b["compute_us"]
        assert res["bottlenecks"]


class _OneLayer(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(2, 2)])


def test_overhead_is_profiled_against_unprofiled_in_the_same_run(tmp_path):
    """A step the profiler cannot see (a 50 ms sleep) costs the same with and without it; a
    step of 3000 tiny ops, each of which the profiler records, costs clearly more under it."""
    cfg = ProfileConfig(name="ovh", out_dir=str(tmp_path), iters=3, warmup=1, profile_memory=False)
    sleepy = profile_model(_OneLayer(), lambda: time.sleep(0.05), cfg)
    assert sleepy["iter_ms"] >= 50 and sleepy["profiled_iter_ms"] >= 50
    assert abs(sleepy["profiler_overhead_pct"]) < 50, sleepy["profiler_overhead_pct"]
    x = torch.zeros(1)

    def tiny_ops():
        for _ in range(3000):
            x.add_(1)

    busy = profile_model(_OneLayer(), tiny_ops, cfg)
    assert busy["profiler_overhead_pct"] > 10, busy["profiler_overhead_pct"]
    assert busy["profiler_overhead_pct"] > sleepy["profiler_overhead_pct"]
    ops = busy["op_time_us"]  # the trace holds the ops it recorded: 3000 per iteration
    assert "aten::add_" in ops


def test_bad_pattern_names_modules():
    with pytest.raises(ValueError, match="names look like"):
        with label_modules(torch.nn.Sequential(torch.nn.Linear(2, 2)), r"layers\.\d+$"):
            pass


def test_gpu_trace_breakdown_by_hand(tmp_path):
    # compute kernels [0,10] and [20,30], an NCCL all-reduce kernel [5,25], idle [30,40] before
    # the last compute kernel [40,45]: compute 25, comm 20, overlap 10, idle 10, span 45
    ev = [
        {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 0, "dur": 10},
        {"ph": "X", "cat": "kernel", "name": "gemm", "ts": 20, "dur": 10},
        {
            "ph": "X",
            "cat": "kernel",
            "name": "ncclDevKernel_AllReduce_Sum_f32_RING_LL",
            "ts": 5,
            "dur": 20,
        },
        {"ph": "X", "cat": "kernel", "name": "softmax", "ts": 40, "dur": 5},
        {
            "ph": "X",
            "cat": "cpu_op",
            "name": "c10d::allreduce_",
            "ts": 1,
            "dur": 1,
            "tid": 1,
            "args": {
                "Input Dims": [[[4, 8]], [], [], []],
                "Input type": ["GenericList[Tensor]", "", "", ""],
            },
        },
        {
            "ph": "X",
            "cat": "gpu_user_annotation",
            "name": "layer::model.layers.0",
            "ts": 0,
            "dur": 30,
        },
        {
            "ph": "X",
            "cat": "gpu_user_annotation",
            "name": "layer::model.layers.1",
            "ts": 40,
            "dur": 5,
        },
    ]
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"traceEvents": ev}))
    r = analyze_trace(p)
    assert r["device"] == "gpu"
    assert r["breakdown"] == {
        "compute_us": 25,
        "comm_us": 20,
        "overlap_us": 10,
        "exposed_comm_us": 10,
        "idle_us": 10,
        "span_us": 45,
        "comm_overlap_fraction": 0.5,
    }
    assert r["layers"]["model.layers.0"]["total_us"] == 30
    assert r["comm"]["all_reduce"] == {
        "count": 1,
        "bytes": 4 * 8 * 4,
        "time_us": 20,
        "bw_gbps": 128 / 20e3,
    }  # TensorList: default 4 bytes
    # NCCL traces carry record_param_comms with the dtype: those win
    ev.append(
        {
            "ph": "X",
            "cat": "cpu_op",
            "name": "record_param_comms",
            "ts": 1,
            "dur": 1,
            "args": {"Collective name": "allreduce", "In msg nelems": 32, "dtype": "BFloat16"},
        }
    )
    p.write_text(json.dumps({"traceEvents": ev}))
    assert analyze_trace(p)["comm"]["all_reduce"]["bytes"] == 32 * 2
    assert r["bottlenecks"][0] == {"name": "gemm", "total_us": 20, "share": 20 / 45}


def test_comm_kind_names():
    assert comm_kind("c10d::_allgather_base_") == "all_gather"
    assert comm_kind("gloo:all_reduce") == "all_reduce"
    assert comm_kind("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL") == "reduce_scatter"
    assert comm_kind("ncclDevKernel_SendRecv") == "sendrecv"
    assert comm_kind("aten::mm") is None
