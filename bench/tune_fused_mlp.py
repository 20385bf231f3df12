"""Tune fused_swiglu_mlp launch configs on this GPU, then measure and write the dispatch table.

    python bench/tune_fused_mlp.py [--models ...] [--tps 1 8] [--ms ...] [--config-dir DIR]
        [--bounded] [--dispatch | --dispatch-only] [--dispatch-ms 1 2 4 ...] [--repeats 3]
        [--candidates-out FILE.jsonl] [--dispatch-out FILE.jsonl]

Writes DIR/triton_<ver>/device_name=<GPU>.json (default: sglang_ext/kernels/configs), the
launch table fused_swiglu_mlp loads, and one record per timed candidate.  With --dispatch
(after tuning) or --dispatch-only it also times the torch MLP as served (its GEMMs through
the gemv table: cuBLAS or the skinny GEMM), Triton v2 and the CUDA one-launch kernel per M
bucket and writes DIR/triton_<ver>/dispatch_device_name=<GPU>.json, the table
SingleExpertMoE's default path reads (a kernel only where it beat the torch MLP by more than
the measured spread; the buckets of M not in --dispatch-ms are kept), and one record per
(shape, M, impl) to --dispatch-out.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from sglang_ext.kernels.fused_mlp_configs import config_path
from sglang_ext.kernels.fused_mlp_dispatch import choose_buckets, dispatch_path, write_table
from sglang_ext.perf.kernel_bench.mlp import MODELS
from sglang_ext.perf.kernel_bench.tune import (
    DISPATCH_MS,
    TUNE_MS,
    measure_dispatch,
    merge_table,
    tables_from_records,
    tune_shape,
)
from sglang_ext.perf.records import append_jsonl, collect_env, make_record

RESULTS = Path(__file__).parent / "results"


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--tps", nargs="+", type=int, default=[1, 8])
    p.add_argument("--ms", nargs="+", type=int, default=list(TUNE_MS))
    p.add_argument("--config-dir", type=Path, default=None)
    p.add_argument("--bounded", action="store_true", help="a smaller candidate set (time-boxed)")
    p.add_argument("--dispatch", action="store_true", help="after tuning, write the dispatch table")
    p.add_argument("--dispatch-only", action="store_true", help="no tuning; the dispatch table")
    p.add_argument("--dispatch-ms", nargs="+", type=int, default=list(DISPATCH_MS))
    p.add_argument("--repeats", type=int, default=3, help="dispatch: repeats per (impl, M)")
    p.add_argument("--candidates-out", type=Path, default=None)
    p.add_argument("--dispatch-out", type=Path, default=None)
    p.add_argument(
        "--from-records",
        nargs=2,
        type=Path,
        metavar=("CANDIDATES.jsonl", "DISPATCH.jsonl"),
        help="no GPU: rebuild both tables (into --config-dir) from a GPU run's records",
    )
    a = p.parse_args(argv)
    if a.from_records:
        from sglang_ext.kernels.fused_mlp_configs import _DEFAULT_DIR

        for t in tables_from_records(*a.from_records, a.config_dir or Path(_DEFAULT_DIR)):
            print(f"wrote {t}")
        return 0
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    if a.config_dir is not None:  # the layer and the kernel read the tables from here too
        import os

        os.environ["SGLANG_EXT_FUSED_MLP_CONFIG_DIR"] = str(a.config_dir)
    name = torch.cuda.get_device_name(0)
    tag = name.replace(" ", "_")
    path = config_path(name, a.config_dir)
    cand_out = a.candidates_out or RESULTS / f"fused_mlp_tune_{tag}.jsonl"
    disp_out = a.dispatch_out or RESULTS / f"fused_mlp_dispatch_{tag}.jsonl"
    env = collect_env()
    for model in a.models:
        hidden, inter_full = MODELS[model]
        for tp in a.tps:
            inter = inter_full // tp
            if not a.dispatch_only:
                best, rows = tune_shape(hidden, inter, a.ms, bounded=a.bounded)
                merge_table(path, hidden, inter, best)
                append_jsonl(
                    cand_out,
                    *[
                        make_record(
                            "fused_mlp_tune",
                            {"model": model, "tp": tp, "bounded": a.bounded, **r},
                            {"median_us": r["us"]},
                            env=env,
                        )
                        for r in rows
                    ],
                )
                print(
                    f"{model} tp={tp}: "
                    + ", ".join(f"M={m}:ks={c.k_splits}" for m, c in best.items())
                )
            if a.dispatch or a.dispatch_only:
                timings, rows = measure_dispatch(hidden, inter, a.dispatch_ms, repeats=a.repeats)
                buckets = choose_buckets(timings)
                write_table(dispatch_path(name, a.config_dir), name, hidden, inter, buckets,
                            keep_unmeasured=True)  # fmt: skip
                append_jsonl(
                    disp_out,
                    *[
                        make_record(
                            "fused_mlp_dispatch",
                            {
                                "model": model,
                                "tp": tp,
                                **{k: v for k, v in r.items() if k in ("H", "I", "M", "impl")},
                            },
                            {k: v for k, v in r.items() if k not in ("H", "I", "M", "impl")},
                            env=env,
                        )
                        for r in rows
                    ],
                )
                print(
                    f"{model} tp={tp} dispatch: "
                    + ", ".join(f"M<={b.m_max}:{b.impl}" for b in buckets)
                )
    print(f"launch table: {path}")
    if a.dispatch or a.dispatch_only:
        print(f"dispatch table: {dispatch_path(name, a.config_dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
