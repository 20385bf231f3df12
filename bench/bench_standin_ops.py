"""The sgl_kernel stand-in's ops on the GPU: Triton kernels vs their plain-torch references.

    python bench/bench_standin_ops.py --output standin_ops.jsonl [--tokens 1 32 4096]
        [--hidden 2048 4096] [--ops rmsnorm rope ...] [--mode graph|eager]

One JSONL record per (op, tokens, hidden, impl): median_us, floor_us (bytes moved over the
copy bandwidth measured in the same run), pct_of_floor, speedup_vs_torch.  Logic:
``sglang_ext.compat.bench``.  Prints a table at the end.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from sglang_ext.cli import add_dataclass_args, dataclass_from_args
from sglang_ext.compat.bench import StandinBenchConfig, run
from sglang_ext.perf.records import append_jsonl, collect_env, make_record


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_dataclass_args(p, StandinBenchConfig)
    p.add_argument("--output", type=Path, default=None, help="JSONL file to append records to")
    a = p.parse_args(argv)
    cfg = dataclass_from_args(StandinBenchConfig, a)
    if not torch.cuda.is_available():
        print("error: needs a CUDA GPU", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env, rows = collect_env(), []

    def emit(conf: dict, metrics: dict) -> None:
        rows.append((conf, metrics))
        if a.output:
            append_jsonl(a.output, make_record("standin_ops", conf, metrics, env=env))

    run(cfg, emit)
    print(
        f"{'op':22} {'tokens':>6} {'hidden':>6} {'impl':>7} {'us':>9} {'floor':>8} {'%floor':>7} {'x torch':>8}"
    )
    for c, m in rows:
        print(f"{c['op']:22} {c['tokens']:6d} {c['hidden']:6d} {c['impl']:>7} {m['median_us']:9.2f} "
              f"{m['floor_us']:8.2f} {m['pct_of_floor']:7.1f} {m['speedup_vs_torch']:8.2f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
