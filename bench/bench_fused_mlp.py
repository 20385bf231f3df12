"""Single-expert MLP shard: the layer's default, cuBLAS, our kernels, SGLang 0.4.7 (E=1).

    python bench/bench_fused_mlp.py [--models qwen3-30b-a3b ...] [--tps 1 8] [--ms 1 2 4]
        [--modes graph eager] [--no-sglang] [--no-cuda] [--output FILE.jsonl]

Measures in one run: copy and GEMM ceilings, then per (model, tp, M) each implementation
(CUDA graph and/or eager; medians of CUDA-event timings, rotating inputs) and writes one
record per (shape, M, impl) with median_us, ratio_to_cublas and speedup_vs_cublas (same
mode), pct_of_weight_floor and pct_of_roofline_floor.  ``layer_default`` is what
SingleExpertMoE runs by default (the dispatch table; ``SGLANG_EXT_FUSED_MLP_CONFIG_DIR``
points at another table folder).  Prints a graph-mode summary at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import torch

from sglang_ext.perf.kernel_bench.mlp import MlpBenchConfig, bench_point
from sglang_ext.perf.kernel_bench.roofline import measure_ceilings
from sglang_ext.perf.records import append_jsonl, collect_env, make_record

logger = logging.getLogger("bench_fused_mlp")
COLS = ["layer_default", "torch", "fused", "cuda_onelaunch", "fused_v4", "sglang_fused_experts"]


def parse_args(argv=None) -> tuple[MlpBenchConfig, Path | None]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    d = MlpBenchConfig()
    p.add_argument("--models", nargs="+", default=d.models)
    p.add_argument("--tps", nargs="+", type=int, default=d.tps)
    p.add_argument("--ms", nargs="+", type=int, default=d.ms)
    p.add_argument("--dtype", default=d.dtype)
    p.add_argument("--modes", nargs="+", default=d.modes, choices=["graph", "eager"])
    p.add_argument("--no-sglang", action="store_true")
    p.add_argument(
        "--sglang-pieces",
        action="store_true",
        help="also time sglang's align, GEMMs and activation separately",
    )
    p.add_argument("--no-cuda", action="store_true", help="skip the CUDA one-launch kernel")
    p.add_argument("--rep-ms", type=float, default=d.rep_ms)
    p.add_argument(
        "--v4-max-m",
        type=int,
        default=d.v4_max_m,
        help="time the experimental one-launch Triton v4 at M <= this (0: never)",
    )
    p.add_argument("--output", type=Path, default=None)
    a = p.parse_args(argv)
    cfg = MlpBenchConfig(
        models=a.models,
        tps=a.tps,
        ms=a.ms,
        dtype=a.dtype,
        modes=a.modes,
        sglang=not a.no_sglang,
        sglang_pieces=a.sglang_pieces,
        cuda=not a.no_cuda,
        rep_ms=a.rep_ms,
        v4_max_m=a.v4_max_m,
    )
    return cfg, a.output


def _table(rows: list[tuple[dict, dict]]) -> str:
    by = {}
    for c, m in rows:
        if c.get("mode") == "graph":
            by.setdefault((c["model"], c["tp"], c["M"]), {})[c["impl"][: -len("_graph")]] = (c, m)
    head = (
        f"{'model':16}{'tp':>3}{'M':>6}"
        + "".join(f"{k[:13]:>14}" for k in COLS)
        + f"{'default':>16}{'x_cublas':>9}{'%wfloor':>8}"
    )
    lines = ["graph medians (us)", head]
    for (model, tp, mm), d in by.items():
        us = [d.get(k, ({}, {}))[1].get("median_us") for k in COLS]
        conf, ld = d.get("layer_default", ({}, {}))
        lines.append(
            f"{model:16}{tp:>3}{mm:>6}"
            + "".join(f"{u:14.1f}" if u else f"{'-':>14}" for u in us)
            + f"{conf.get('default_impl', '-'):>16}"
            + f"{ld.get('speedup_vs_cublas', 0):9.2f}"
            + f"{ld.get('pct_of_weight_floor', 0):8.1f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg, output = parse_args(argv)
    if not torch.cuda.is_available():
        logger.error("needs a CUDA GPU")
        return 2
    env = collect_env()
    device = torch.cuda.get_device_name(0).replace(" ", "_")
    output = output or Path(__file__).parent / "results" / f"fused_mlp_{device}.jsonl"
    fm, notes = None, []
    if cfg.sglang:
        try:
            from sglang_ext.perf.kernel_bench.sglang_baseline import import_fused_moe

            fm, notes = import_fused_moe()
        except Exception as e:
            logger.warning("sglang baseline unavailable: %r", e)
            notes = [f"import failed: {e!r}"]
    ceil = measure_ceilings(getattr(torch, cfg.dtype))
    logger.info("ceilings: %s", ceil)
    run_cfg = {**dataclasses.asdict(cfg), "sglang_setup": notes}
    append_jsonl(output, make_record("fused_mlp", {**run_cfg, "impl": "ceilings"}, ceil, env=env))
    rows = []
    for model in cfg.models:
        for tp in cfg.tps:
            for m in cfg.ms:
                for conf, metrics in bench_point(model, tp, m, cfg, ceil, fm):
                    metrics = {
                        **metrics,
                        "copy_gbps": ceil["copy_gbps"],
                        "gemm_tflops": ceil["gemm_tflops"],
                    }
                    append_jsonl(
                        output, make_record("fused_mlp", {**run_cfg, **conf}, metrics, env=env)
                    )
                    rows.append((conf, metrics))
                logger.info("done %s tp=%d M=%d", model, tp, m)
    print(_table(rows))
    print(f"records: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
