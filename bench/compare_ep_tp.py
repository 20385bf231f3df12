"""Launch each server configuration, run the same load, and write a comparison report.

  python bench/compare_ep_tp.py --server-args "--model-path /m --tp-size 2" \
      --configs "dp:--single-expert-mode dp" "tp:--single-expert-mode tp" --qps 2 8 inf --repeats 3
Writes bench/results/compare/{compare.jsonl, report.md, *.png, server_<label>.log}: per
(config, QPS, repeat) one serve record, per config one greedy record (the configs' greedy
tokens on fixed prompts, which must agree), and a report with a verdict per metric.
The whole study (this comparison among its steps): python -m sglang_ext.study quick
"""

from __future__ import annotations

import argparse
import logging

from sglang_ext.cli import add_dataclass_args, dataclass_from_args
from sglang_ext.perf.serving.compare import CompareConfig, run_comparison


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_args(p, CompareConfig)
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    records, report = run_comparison(dataclass_from_args(CompareConfig, a))
    print(f"{len(records)} records; report: {report}")


if __name__ == "__main__":
    main()
