"""Tune fused_swiglu_mlp launch configs on this GPU and write the JSON table.

    python bench/tune_fused_mlp.py [--models ...] [--tps 1 8] [--ms ...] [--config-dir DIR]
        [--candidates-out bench/results/fused_mlp_tune_<device>.jsonl]

Writes DIR/triton_<ver>/device_name=<GPU>.json (default: sglang_ext/kernels/configs), the
table that fused_swiglu_mlp loads, and one record per timed candidate.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from sglang_ext.kernels.fused_mlp_configs import config_path
from sglang_ext.kernels.fused_mlp_tune import TUNE_MS, merge_table, tune_shape
from sglang_ext.kernels.mlp_bench import MODELS
from sglang_ext.perf.records import append_jsonl, collect_env, make_record


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--tps", nargs="+", type=int, default=[1, 8])
    p.add_argument("--ms", nargs="+", type=int, default=list(TUNE_MS))
    p.add_argument("--config-dir", type=Path, default=None)
    p.add_argument("--candidates-out", type=Path, default=None)
    a = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("needs a CUDA GPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0)
    path = config_path(name, a.config_dir)
    cand_out = a.candidates_out or (Path(__file__).parent / "results"
                                    / f"fused_mlp_tune_{name.replace(' ', '_')}.jsonl")
    env = collect_env()
    for model in a.models:
        hidden, inter_full = MODELS[model]
        for tp in a.tps:
            best, rows = tune_shape(hidden, inter_full // tp, a.ms)
            merge_table(path, hidden, inter_full // tp, best)
            recs = [make_record("fused_mlp_tune", {"model": model, "tp": tp, **r},
                                {"median_us": r["us"]}, env=env) for r in rows]
            append_jsonl(cand_out, *recs)
            print(f"{model} tp={tp}: " + ", ".join(f"M={m}:ks={c.k_splits}" for m, c in best.items()))
    print(f"table: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
