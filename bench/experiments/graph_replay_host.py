"""(bench/experiments: a one-off diagnosis; not yet run -- no record yet.)

Experiment: why does the host spend 136-167 us inside ``CUDAGraph.replay`` per decode step at
batch 8 / 32 and 14 us at batch 1 (30B one-expert preset, H200, ``metrics.host_calls_us`` of
``bench/decode_budget.py``, call 44)?  A 96-matmul cuBLAS graph at M = 8 / 32 replays in
14-17 us of host time (call 45), so cuBLAS nodes alone do not explain it.

In one rank it loads the 30B preset as ``decode_budget`` does, with every CUDA graph kept for
``CUDAGraph.debug_dump``, then for each captured batch size: the host time of one
``replay()`` after a synchronize (and after 2 ms idle), ten back-to-back replays, and the
graph's node and edge kinds from ``cudaGraphDebugDotPrint`` (``$OUT/graph_b{1,8,32}.dot``).
Before that, the host cost of one launch of the graph-input copy (FastLaunch, Triton's
dispatch, sglang's five copies) and of replaying small graphs of cuBLAS matmuls, Triton
rmsnorms and both interleaved, at M = 1 / 8 / 32.  Prints JSON; writes
``$OUT/graph_replay_host.json``.

    OUT=/tmp/out python bench/experiments/graph_replay_host.py
"""

import argparse
import json
import os
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

OUT = Path(os.environ.get("OUT", "/tmp/graph_replay_host"))
NODE_KINDS = r"\b(KERNEL|MEMSET|MEMCPY|EVENT_RECORD|WAIT_EVENT|HOST|EMPTY|MEM_ALLOC|MEM_FREE)\b"


def host_launch(g, n: int = 40, idle_s: float = 0.0) -> tuple[float, float]:
    """Median host us of one replay() call, and of the call plus its run, from an idle GPU."""
    import torch

    call, total = [], []
    for _ in range(n):
        torch.cuda.synchronize()
        if idle_s:
            time.sleep(idle_s)
        t0 = time.perf_counter_ns()
        g.replay()
        t1 = time.perf_counter_ns()
        torch.cuda.synchronize()
        t2 = time.perf_counter_ns()
        call.append((t1 - t0) / 1e3)
        total.append((t2 - t0) / 1e3)
    return round(statistics.median(call), 1), round(statistics.median(total), 1)


def back_to_back(g, n: int = 10) -> list[float]:
    """Host us of each of n replays launched without a synchronize between them."""
    import torch

    torch.cuda.synchronize()
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        g.replay()
        out.append(round((time.perf_counter_ns() - t0) / 1e3, 1))
    torch.cuda.synchronize()
    return out


def dot_summary(path: Path) -> dict:
    """Node kinds, edge count and mentions of programmatic edges and clusters in a DOT dump."""
    txt = path.read_text(errors="replace")
    return {
        "bytes": len(txt),
        "node_kinds": dict(Counter(re.findall(NODE_KINDS, txt))),
        "edges": txt.count("->"),
        "programmatic": len(re.findall("programmatic", txt, re.I)),
        "cluster": len(re.findall("cluster", txt, re.I)),
    }


def small_graphs_at(m: int) -> dict:
    """Host us of replaying graphs of 96 cuBLAS matmuls, 96 Triton rmsnorms, and both mixed,
    at M = m tokens."""
    import torch
    import torch.nn.functional as F

    from sglang_ext.kernels.norm import rmsnorm

    x = torch.randn(m, 2048, device="cuda", dtype=torch.bfloat16)
    w1 = torch.randn(5120, 2048, device="cuda", dtype=torch.bfloat16)
    w2 = torch.randn(2048, 4096, device="cuda", dtype=torch.bfloat16)
    nw = torch.ones(2048, device="cuda", dtype=torch.bfloat16)

    def cublas():
        for _ in range(48):
            F.linear(F.linear(x, w1)[:, :4096], w2)

    def triton_only():
        for _ in range(96):
            rmsnorm(x, nw, 1e-6)

    def mixed():
        for _ in range(48):
            y = F.linear(rmsnorm(x, nw, 1e-6), w1)
            rmsnorm(F.linear(y[:, :4096], w2), nw, 1e-6)

    res = {}
    for name, fn in (("cublas", cublas), ("triton", triton_only), ("mixed", mixed)):
        side = torch.cuda.Stream()
        with torch.cuda.stream(side):
            fn()
        torch.cuda.synchronize()
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            fn()
        res[f"{name}_m{m}"] = host_launch(g, 30)
    return res


def launch_costs(bs: int = 8, n: int = 300) -> dict:
    """Host us per call, launched back to back: the graph-input copy through FastLaunch (as
    served), the same kernel through Triton's dispatch, sglang's five copies, one torch op."""
    import torch

    from sglang_ext.kernels import decode_inputs as di

    types = (torch.int64, torch.int32, torch.int32, torch.int64, torch.int64)
    dst = tuple(torch.zeros(64, dtype=t, device="cuda") for t in types)
    src = tuple(torch.ones(bs, dtype=torch.int64, device="cuda") for _ in types)

    def per_call(fn) -> float:
        for _ in range(20):
            fn()
        torch.cuda.synchronize()
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        t1 = time.perf_counter_ns()
        torch.cuda.synchronize()
        return round((t1 - t0) / n / 1e3, 2)

    return {
        "copy_graph_inputs": per_call(lambda: di.copy_graph_inputs(dst, src, bs, check=False)),
        "triton_dispatch": per_call(
            lambda: di._graph_inputs_kernel[(1,)](*dst, *src, bs, bs, BLOCK=256)
        ),
        "five_torch_copies": per_call(
            lambda: [d[:bs].copy_(s) for d, s in zip(dst, src, strict=True)]
        ),
        "one_torch_add_": per_call(lambda: dst[0].add_(1)),
    }


def rank_main(rank: int, sglang_argv: list[str], out: str) -> None:
    import torch
    from sglang.bench_one_batch import load_model
    from sglang.srt.server_args import prepare_server_args

    from sglang_ext.profile.config import ProfileArgs
    from sglang_ext.profile.rank import StepRunner, init_dist

    begin = torch.cuda.CUDAGraph.capture_begin

    def keep_for_dump(self, *a, **k):
        self.enable_debug_mode()
        return begin(self, *a, **k)

    torch.cuda.CUDAGraph.capture_begin = keep_for_dump
    sa = prepare_server_args(sglang_argv)
    sa.cuda_graph_max_bs = 32
    init_dist(sa.device, rank, 300.0)
    mr, _ = load_model(sa, argparse.Namespace(nccl_port=0), rank)
    res: dict = {"launch_costs_us": launch_costs()}
    res["small_graphs"] = {k: v for m in (1, 8, 32) for k, v in small_graphs_at(m).items()}
    runner = mr.cuda_graph_runner
    res["capture_bs"] = list(runner.capture_bs)
    for b in (1, 8, 32):
        pa = ProfileArgs(phase="decode", batch_size=b, input_len=512, steps=31)
        StepRunner(mr, pa, seed=0).run()
        _, steps = StepRunner(mr, pa, seed=0).run()
        res[f"step_ms_b{b}"] = round(statistics.median(steps) * 1e3, 3)
    for bs in runner.capture_bs:
        g = runner.graphs[bs]
        row = {
            "host_call_us, with_run_us": host_launch(g),
            "after_2ms_idle": host_launch(g, 20, 0.002),
            "back_to_back_us": back_to_back(g),
        }
        if bs in (1, 8, 32):
            dot = OUT / f"graph_b{bs}.dot"
            g.debug_dump(str(dot))
            row["dot"] = dot_summary(dot)
        res[f"bs{bs}"] = row
    Path(out).write_text(json.dumps(res, indent=1))


def main() -> None:
    from sglang_ext import compat
    from sglang_ext.perf.dist_env import run_spawned
    from sglang_ext.perf.kernel_bench.sglang_baseline import activate_sglang
    from sglang_ext.presets import materialize
    from sglang_ext.serving.args import plan_launch

    OUT.mkdir(parents=True, exist_ok=True)
    standin = compat.need_standin()
    activate_sglang()
    with tempfile.TemporaryDirectory() as tmp:
        model = materialize("qwen3-30b-a3b-1e", Path(tmp) / "m")
        flags = ["--model-path", str(model), "--load-format", "dummy", "--dtype", "bfloat16",
                 "--single-expert-mode", "tp", "--mem-fraction-static", "0.8"]  # fmt: skip
        lp = plan_launch(flags, cuda=True, sgl_kernel=not standin, default_model_path=None)
        lp.rank_config.export()
        res = OUT / "graph_replay_host.json"
        run_spawned(rank_main, 1, lp.sglang_argv, str(res), deadline_s=300)
    print(res.read_text())


if __name__ == "__main__":
    main()
