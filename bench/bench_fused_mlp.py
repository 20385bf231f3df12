"""Fused SwiGLU MLP shard vs torch/cuBLAS vs SGLang 0.4.7 fused_experts (E=1), on one GPU.

    python bench/bench_fused_mlp.py [--models qwen3-30b-a3b ...] [--tps 1 8] [--ms 1 2 4]
        [--no-sglang] [--output bench/results/fused_mlp_<device>.jsonl]

Measures in one run: copy and GEMM ceilings, then per (model, tp, M) each implementation in
eager mode and as a CUDA graph (medians of CUDA-event timings, rotating inputs), and writes
one record per (shape, M, impl) with median_us, ratio_to_cublas (same mode) and
pct_of_roofline_floor.  Prints a summary table (graph-mode µs) at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from sglang_ext.kernels.mlp_bench import MlpBenchConfig, bench_point
from sglang_ext.kernels.mlp_timing import measure_ceilings
from sglang_ext.perf.records import append_jsonl, collect_env, make_record

log = logging.getLogger("bench_fused_mlp")


def parse_args(argv=None) -> tuple[MlpBenchConfig, Path | None]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = MlpBenchConfig()
    p.add_argument("--models", nargs="+", default=d.models)
    p.add_argument("--tps", nargs="+", type=int, default=d.tps)
    p.add_argument("--ms", nargs="+", type=int, default=d.ms)
    p.add_argument("--dtype", default=d.dtype)
    p.add_argument("--no-sglang", action="store_true")
    p.add_argument("--rep-ms", type=float, default=d.rep_ms)
    p.add_argument("--v4-max-m", type=int, default=d.v4_max_m,
                   help="time the one-launch v4 at M <= this (0: never)")
    p.add_argument("--output", type=Path, default=None)
    a = p.parse_args(argv)
    cfg = MlpBenchConfig(models=a.models, tps=a.tps, ms=a.ms, dtype=a.dtype,
                         sglang=not a.no_sglang, rep_ms=a.rep_ms, v4_max_m=a.v4_max_m)
    return cfg, a.output


def _v4_err(d: dict) -> float:
    """Largest relative error vs cuBLAS among the v4 records of one (shape, M)."""
    return max((v.get("rel_err_vs_torch") or 0 for k, v in d.items() if "v4" in k), default=0)


def _table(rows: list[tuple[dict, dict]]) -> str:
    cols = ["fused_graph", "fused_v4_graph", "fused_v4_bn128_graph", "fused_v4_bk256_graph",
            "fused_eager", "torch_graph", "torch_eager",
            "sglang_fused_experts_eager", "sglang_gemms_graph", "sglang_moe_align_eager"]
    by = {}
    for c, m in rows:
        by.setdefault((c["model"], c["tp"], c["M"]), {})[c["impl"]] = m
    head = f"{'model':16}{'tp':>3}{'M':>6}" + "".join(f"{k[:14]:>15}" for k in cols) + \
        f"{'floor':>8}{'x_cublas':>9}{'%floor':>7}{'v4_err':>9}"
    lines = [head]
    for (model, tp, mm), d in by.items():
        us = [d.get(k, {}).get("median_us") for k in cols]
        fg = d.get("fused_graph", {})
        lines.append(f"{model:16}{tp:>3}{mm:>6}" + "".join(
            f"{u:15.1f}" if u else f"{'-':>15}" for u in us)
            + f"{fg.get('floor_us', 0):8.1f}{1 / (fg.get('ratio_to_cublas') or 1):9.2f}"
            + f"{fg.get('pct_of_roofline_floor', 0):7.1f}"
            + f"{_v4_err(d):9.1e}")
    return "\n".join(lines)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg, output = parse_args(argv)
    if not torch.cuda.is_available():
        log.error("needs a CUDA GPU")
        return 2
    env = collect_env()
    device = torch.cuda.get_device_name(0).replace(" ", "_")
    output = output or Path(__file__).parent / "results" / f"fused_mlp_{device}.jsonl"
    fm, shim = None, []
    if cfg.sglang:
        try:
            from sglang_ext.kernels import sglang_baseline

            fm, shim = sglang_baseline.install(), sglang_baseline.SHIM_LOG
        except Exception as e:
            log.warning("sglang baseline unavailable: %r", e)
            shim = [f"import failed: {e!r}"]
    ceil = measure_ceilings(getattr(torch, cfg.dtype))
    log.info("ceilings: %s", ceil)
    run_cfg = {**dataclasses.asdict(cfg), "sglang_shim": shim}
    append_jsonl(output, make_record("fused_mlp", {**run_cfg, "impl": "ceilings"}, ceil, env=env))
    rows = []
    for model in cfg.models:
        for tp in cfg.tps:
            for m in cfg.ms:
                for conf, metrics in bench_point(model, tp, m, cfg, ceil, fm):
                    metrics = {**metrics, "copy_gbps": ceil["copy_gbps"],
                               "gemm_tflops": ceil["gemm_tflops"]}
                    append_jsonl(output, make_record("fused_mlp", {**run_cfg, **conf}, metrics,
                                                     env=env))
                    rows.append((conf, metrics))
                log.info("done %s tp=%d M=%d", model, tp, m)
    print(_table(rows))
    print(f"records: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
