"""Markdown report (tables + plots) from result records (JSONL only).

python bench/report.py bench/results/*.jsonl --out-dir bench/results/report
python bench/report.py --study bench/results/study/quick     # remake a study's report
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from sglang_ext.perf.records import read_jsonl
from sglang_ext.perf.report.markdown import write_report


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("jsonl", nargs="*", help="record files")
    p.add_argument("--study", default=None, help="a study output folder: remake its report")
    p.add_argument("--out-dir", default="bench/results/report")
    p.add_argument("--title", default="sglang-ext benchmark report")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.study:
        import json

        from sglang_ext.study.config import StudyConfig, load_config
        from sglang_ext.study.report import write_study_report
        from sglang_ext.study.runner import step_status

        meta = json.loads((Path(a.study) / "study.json").read_text())
        cfg: StudyConfig = load_config(meta["mode"])
        cfg.title = meta["config"].get("title", cfg.title)
        steps = list(step_status(Path(a.study)))
        print(write_study_report(cfg, Path(a.study), steps=steps, mode=meta["mode"]))
        return
    if not a.jsonl:
        p.error("give record files, or --study DIR")
    print(write_report((r for f in a.jsonl for r in read_jsonl(f)), a.out_dir, title=a.title))


if __name__ == "__main__":
    main()
