"""Plots (PNG) from result records (JSONL only).

python bench/plot.py bench/results/*.jsonl --out-dir bench/results/plots
"""

from __future__ import annotations

import argparse
import logging

from sglang_ext.perf.records import read_jsonl
from sglang_ext.perf.report.plots import make_plots


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("jsonl", nargs="+", help="record files")
    p.add_argument("--out-dir", default="bench/results/plots")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    recs = [r for f in a.jsonl for r in read_jsonl(f)]
    for path in make_plots(recs, a.out_dir):
        print(path)


if __name__ == "__main__":
    main()
