"""Latency vs sequence length and batch size at several TP sizes, with speedup/efficiency.

Runs ``sglang.bench_one_batch`` (apply our patches first: python -m sglang_ext.patch apply)
once per TP size and appends one ``scaling`` record per (tp, batch, input length):
  python bench/scaling.py --server-args "--model-path /m" --tp-sizes 1 2 4 \
      --batch-size 1 8 32 --input-len 256 1024 4096 --output-len 16
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

from sglang_ext.perf.records import append_jsonl, make_record
from sglang_ext.perf.scaling import run_bench_one_batch, scaling_table


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--server-args", required=True, help="sglang server flags, e.g. '--model-path /m'"
    )
    p.add_argument("--tp-sizes", type=int, nargs="+", default=[1])
    p.add_argument("--batch-size", type=int, nargs="+", default=[1])
    p.add_argument("--input-len", type=int, nargs="+", default=[1024])
    p.add_argument("--output-len", type=int, default=16)
    p.add_argument("--runner", default=f"{sys.executable} -m sglang.bench_one_batch")
    p.add_argument("--output-file", default="bench/results/scaling.jsonl")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = []
    for tp in a.tp_sizes:
        log_path = Path(a.output_file).with_name(f"scaling_tp{tp}.log")
        for r in run_bench_one_batch(
            [*shlex.split(a.server_args), "--tp-size", str(tp)],
            batch_sizes=a.batch_size,
            input_lens=a.input_len,
            output_len=a.output_len,
            runner=a.runner,
            log_path=log_path,
        ):
            rows.append({**r, "tp_size": tp})
    for r in scaling_table(rows):
        config = {
            "server_args": a.server_args,
            "tp_size": r["tp_size"],
            "batch_size": r["batch_size"],
            "seq_len": r["input_len"],
            "output_len": r["output_len"],
            "label": f"tp{r['tp_size']} bs{r['batch_size']}",
        }
        metrics = {**r, "latency_ms": r["prefill_latency"] * 1e3}
        append_jsonl(a.output_file, make_record("scaling", config, metrics))
        print(
            config["label"],
            "input",
            r["input_len"],
            {k: round(v, 4) for k, v in r.items() if k.startswith(("speedup", "efficiency"))},
        )


if __name__ == "__main__":
    main()
