"""``bench/decode_budget.py``: decode-step budget records of the one-expert presets on a GPU.

For each preset (dummy weights, bf16, TP 1, CUDA graphs on, ``--single-expert-mode tp``)
one spawned rank loads sglang's ModelRunner once and, per batch size, measures prefill and
decode steps and profiles a few decode steps (:mod:`decode_budget` has the definitions).
One record per (preset, batch size) goes to ``bench/results/<gpu>/decode_budget.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sglang_ext.cli import add_dataclass_args, dataclass_from_args

from .config import ProfileArgs

__all__ = ["BudgetArgs", "main", "budget_rank_main", "budget_record"]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class BudgetArgs:
    """What the decode budget measures."""

    presets: list[str] = field(
        default_factory=lambda: ["qwen3-30b-a3b-1e", "qwen3-235b-a22b-1e"],
        metadata={"help": "sglang_ext.presets names"},
    )
    """Presets to run (dummy weights)."""
    batch_sizes: list[int] = field(
        default_factory=lambda: [1, 8, 32, 128], metadata={"help": "decode batch sizes"}
    )
    """Batch sizes (CUDA graphs are captured up to the largest)."""
    input_len: int = field(default=512, metadata={"help": "prompt tokens per request"})
    """Prompt length."""
    output_len: int = field(
        default=32, metadata={"help": "tokens per request (1 prefill + decode)"}
    )
    """Generated tokens: the prefill's one plus output_len - 1 timed decode steps."""
    profile_steps: int = field(default=5, metadata={"help": "decode steps under the profiler"})
    """Decode steps traced per batch size (after a warm-up run)."""
    copy_bytes: int = field(default=1 << 30, metadata={"help": "buffer of the copy-bandwidth test"})
    """Bytes copied to measure the device copy bandwidth."""
    output_file: str = field(
        default="", metadata={"help": "default bench/results/<gpu>/decode_budget.jsonl"}
    )
    """Where records are appended."""
    trace_dir: str = field(default="/tmp/decode_budget_traces", metadata={"help": "Chrome traces"})
    """Folder of ``{preset}_b{B}_rank0.json``."""
    deadline_s: float = field(default=540.0, metadata={"help": "per-preset deadline, seconds"})
    """One preset's rank must finish within this."""

    def __post_init__(self) -> None:
        if self.output_len < 2 or self.input_len < 1 or self.profile_steps < 1:
            raise ValueError(
                f"need --output-len >= 2, --input-len >= 1, --profile-steps >= 1; got "
                f"{self.output_len}, {self.input_len}, {self.profile_steps}"
            )
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError(f"--batch-sizes must be positive, got {self.batch_sizes}")


def _standin_impl() -> str | None:
    """Which implementation the sgl_kernel stand-in's ops run on CUDA (None: real sgl_kernel)."""
    from sglang_ext import compat

    if not compat.need_standin():
        return None
    from sglang_ext.compat.sgl_kernel import _impl

    req = _impl.requested()
    return _impl.auto_cuda_provider() if req == "auto" else req


def _graph_replays(mr: Any, batch: int, device: Any, iters: int = 30) -> list[float] | None:
    """Seconds of back-to-back replays of the decode graph a batch of ``batch`` replays (its
    inputs as the last decode step left them); None when that batch runs eagerly."""
    import bisect

    from sglang_ext.perf.timing import time_iters

    runner = getattr(mr, "cuda_graph_runner", None)
    if runner is None or batch > max(runner.capture_bs):
        return None
    bs = runner.capture_bs[bisect.bisect_left(runner.capture_bs, batch)]
    return time_iters(runner.graphs[bs].replay, device=device, warmup=3, iters=iters)


def budget_rank_main(rank: int, sglang_argv: list[str], bargs: BudgetArgs, out: str) -> None:
    """One preset on GPU ``rank`` (TP 1): every batch size, results to ``out`` (JSON)."""
    import torch
    from sglang.bench_one_batch import load_model
    from sglang.srt.server_args import prepare_server_args
    from torch.profiler import ProfilerActivity, profile

    from sglang_ext.kernels import pdl
    from sglang_ext.kernels.tables import present_tables
    from sglang_ext.perf.comm.devbw import device_copy_bw
    from sglang_ext.perf.profile.trace_analysis import load_events
    from sglang_ext.serving.config import rank_config

    from .decode_budget import decode_kernel_stats
    from .host_calls import DECODE_HOST_CALLS, timed_calls
    from .rank import StepRunner, init_dist

    sa = prepare_server_args(sglang_argv)
    sa.cuda_graph_max_bs = max(bargs.batch_sizes)  # as bench_one_batch does
    init_dist(sa.device, rank, 300.0)
    mr, _ = load_model(sa, argparse.Namespace(nccl_port=0), rank)
    mc = mr.model_config
    bw = device_copy_bw(bargs.copy_bytes, torch.device("cuda", rank))["bw_gbps"]
    params = dict(mr.model.named_parameters())
    embed = sum(p.numel() * p.element_size() for n, p in params.items() if "embed_tokens" in n)
    weights = sum(p.numel() * p.element_size() for p in params.values()) - embed
    facts = {
        "layers": mc.num_hidden_layers,
        "kv_heads": mc.get_num_kv_heads(sa.tp_size),
        "head_dim": mc.head_dim,
        "dtype_size": torch.empty(0, dtype=mc.dtype).element_size(),
        "dtype": str(mc.dtype).removeprefix("torch."),
        "weight_bytes": weights,
        "copy_bw_gbps": bw,
        "max_total_num_tokens": mr.max_total_num_tokens,
        "attention_backend": sa.attention_backend,
        "sampling_backend": sa.sampling_backend,
        "cuda_graph_max_bs": sa.cuda_graph_max_bs,
        "disable_cuda_graph": sa.disable_cuda_graph,
        "enable_torch_compile": sa.enable_torch_compile,
        "triton_attention_num_kv_splits": sa.triton_attention_num_kv_splits,
        # SGLANG_TRITON_DECODE_ATTN_STATIC_KV_SPLITS: always that many splits (None: no Triton)
        "triton_attention_static_kv_splits": getattr(mr.attn_backend, "static_kv_splits", None),
        "standin_impl": _standin_impl(),
        "kernel_tables": present_tables(torch.cuda.get_device_name(rank)),
        "graph_metadata": rank_config().graph_metadata,  # patch 0021 (SGLANG_EXT_GRAPH_METADATA)
        # programmatic dependent launch of our Triton kernels, as it is on (SGLANG_EXT_PDL)
        "pdl": pdl.enabled(torch.empty(0, device=f"cuda:{rank}")),
        # the decoder layer's norms inside the linears (patch 0023, SGLANG_EXT_FUSED_NORM)
        "fused_norm": rank_config().fused_norm,
        # the one-launch decode attention (patch 0024, SGLANG_EXT_FUSED_ATTENTION)
        "fused_attention": rank_config().fused_attention,
        # the step's bookkeeping in one launch each (patch 0025, SGLANG_EXT_FUSED_INPUTS)
        "fused_inputs": rank_config().fused_inputs,
        "rows": [],
    }
    steps = bargs.output_len - 1
    for b in bargs.batch_sizes:
        if b * (bargs.input_len + bargs.output_len) > mr.max_total_num_tokens:
            logger.warning("batch %d skipped: more tokens than the KV pool holds", b)
            continue
        pa = ProfileArgs(phase="decode", batch_size=b, input_len=bargs.input_len, steps=steps)
        runner = StepRunner(mr, pa, seed=0)
        runner.run()  # warm-up
        _, decode_s = runner.run()
        prefill_s = runner.prefill_s
        graph_replay_s = _graph_replays(mr, b, torch.device("cuda", rank))
        with timed_calls(DECODE_HOST_CALLS, within="decode") as calls:  # no profiler
            _, timed_s = runner.run()
        host_calls = {k: c.ns / 1e3 / steps for k, c in calls.items() if c.calls}
        short = StepRunner(mr, replace(pa, steps=bargs.profile_steps), seed=0)
        trace = Path(bargs.trace_dir) / f"{Path(sa.model_path).name}_b{b}_rank{rank}.json"
        trace.parent.mkdir(parents=True, exist_ok=True)
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            short.run()
        prof.export_chrome_trace(str(trace))
        stats = decode_kernel_stats(load_events(trace))
        facts["rows"].append(
            {
                "batch_size": b,
                "decode_s": decode_s,
                "prefill_s": prefill_s,
                "graph_replay_s": graph_replay_s,
                "host_calls_us": host_calls,
                "host_calls_step_s": timed_s,
                "stats": stats,
                "top_kernels": stats.pop("top_kernels"),
                "trace": str(trace),
            }
        )
    Path(out).write_text(json.dumps(facts))


def budget_record(
    preset: str, bargs: BudgetArgs, facts: dict[str, Any], row: dict[str, Any]
) -> dict[str, Any]:
    """The decode_budget record of one (preset, batch size)."""
    from sglang_ext.perf.records import make_record

    from .decode_budget import budget_metrics, kv_bytes_per_step

    steps = len(row["decode_s"])
    # decode step i attends the prompt, the prefill's token and i decoded tokens, plus itself
    context = bargs.input_len + 1 + statistics.mean(range(steps)) + 1
    kv = kv_bytes_per_step(
        batch=row["batch_size"],
        context_len=context,
        layers=facts["layers"],
        kv_heads=facts["kv_heads"],
        head_dim=facts["head_dim"],
        dtype_size=facts["dtype_size"],
    )
    metrics = budget_metrics(
        decode_s=row["decode_s"],
        prefill_s=row["prefill_s"],
        stats=row["stats"],
        layers=facts["layers"],
        weight_bytes=facts["weight_bytes"],
        kv_bytes=kv,
        copy_bw_gbps=facts["copy_bw_gbps"],
        graph_replay_s=row.get("graph_replay_s"),
    )
    if row.get("host_calls_us") is not None:
        # host wall time inside sglang's calls, us per step (profile.host_calls), from a run
        # of its own whose median step is host_calls_step_ms
        metrics["host_calls_us"] = row["host_calls_us"]
        metrics["host_calls_step_ms"] = statistics.median(row["host_calls_step_s"]) * 1e3
    metrics["top_kernels"] = row["top_kernels"]
    metrics["trace"] = row["trace"]
    config = {
        "preset": preset,
        "batch_size": row["batch_size"],
        "input_len": bargs.input_len,
        "output_len": bargs.output_len,
        "profile_steps": bargs.profile_steps,
        "tp_size": 1,
        "mean_context_len": context,
        **{
            k: facts[k]
            for k in (
                "dtype",
                "attention_backend",
                "sampling_backend",
                "cuda_graph_max_bs",
                "disable_cuda_graph",
                "enable_torch_compile",
                "triton_attention_num_kv_splits",
                "triton_attention_static_kv_splits",
                "standin_impl",
                "kernel_tables",
                "graph_metadata",
                "pdl",
                "fused_norm",
                "fused_attention",
                "fused_inputs",
            )
        },  # fmt: skip
    }
    return make_record("decode_budget", config, metrics)


def main(argv: list[str] | None = None) -> int:
    """Parse, then run each preset in its own rank process; append the records."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[sglang-ext] %(message)s")
    p = argparse.ArgumentParser(
        prog="python bench/decode_budget.py",
        description=__doc__ + "\nOther flags go to sglang's ServerArgs.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_args(p, BudgetArgs)
    ns, rest = p.parse_known_args(argv)
    bargs = dataclass_from_args(BudgetArgs, ns)

    import torch

    from sglang_ext import compat
    from sglang_ext.patching import overlay
    from sglang_ext.perf.dist_env import run_spawned
    from sglang_ext.perf.records import append_jsonl
    from sglang_ext.presets import materialize
    from sglang_ext.serving.args import plan_launch

    from .decode_budget import gpu_folder

    if not torch.cuda.is_available():
        print("error: the decode budget needs a CUDA GPU", file=sys.stderr)
        return 2
    standin = compat.need_standin()
    overlay.activate(overlay.ensure_patched_sglang())
    if standin:
        overlay.activate(Path(compat.standin_path()))
    out = Path(
        bargs.output_file
        or f"bench/results/{gpu_folder(torch.cuda.get_device_name(0))}/decode_budget.jsonl"
    )
    for preset in bargs.presets:
        with tempfile.TemporaryDirectory(prefix="sglang_ext_budget_") as tmp:
            model = materialize(preset, Path(tmp) / preset)
            flags = ["--model-path", str(model), "--load-format", "dummy", "--dtype", "bfloat16",
                     "--single-expert-mode", "tp", "--mem-fraction-static", "0.8", *rest]  # fmt: skip
            lp = plan_launch(flags, cuda=True, sgl_kernel=not standin, default_model_path=None)
            lp.rank_config.export()  # SGLANG_EXT_CONFIG, read once in every rank
            res = Path(tmp) / "facts.json"
            run_spawned(
                budget_rank_main, 1, lp.sglang_argv, bargs, str(res), deadline_s=bargs.deadline_s
            )
            facts = json.loads(res.read_text())
        for row in facts["rows"]:
            rec = budget_record(preset, bargs, facts, row)
            append_jsonl(out, rec)
            m = rec["metrics"]
            print(
                f"{preset} batch {row['batch_size']}: decode {m['decode_step_ms']:.2f} ms "
                f"(floor {m['floor_ms']:.2f} ms, x{m['ratio_to_floor']:.1f}), prefill "
                f"{m['prefill_ms']:.1f} ms, {m['kernels_per_layer_step']:.1f} kernels/layer/step, "
                f"GPU busy {m['gpu_busy_frac']:.0%}"
                + (
                    f"; graph replay {m['graph_replay_ms']:.2f} ms (kernels busy "
                    f"{m['graph_busy_frac']:.0%} of it), host {m['host_ms_per_step']:.2f} ms"
                    if m["graph_replay_ms"] is not None
                    else ""
                ),
                flush=True,
            )
            if m.get("host_calls_us"):
                calls = ", ".join(f"{k} {v:.0f}" for k, v in m["host_calls_us"].items())
                print(f"  host us/step inside sglang's calls (inclusive): {calls}", flush=True)
    print(f"records -> {out}")
    return 0
