"""Load a running sglang / OpenAI-compatible server and append a serving record.

  python bench/serve_load.py --base-url http://127.0.0.1:30000 --num-prompts 200 --qps 4 \
      --sequence-length 512 --output-length 128
  (random prompts from the server's own tokenizer, found through its /get_model_info;
   --tokenizer PATH or --vocab-size N where that path is not readable on this machine)
  python bench/serve_load.py --measure-client-overhead   # the client's own cost
"""

from __future__ import annotations

import argparse
import json
import logging

from sglang_ext.cli import add_dataclass_args, dataclass_from_args
from sglang_ext.perf.records import append_jsonl
from sglang_ext.perf.serving.loadgen import LoadConfig
from sglang_ext.perf.serving.serve_bench import measure_client_overhead, serving_record


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_args(p, LoadConfig)
    p.add_argument("--output-file", default="bench/results/serve.jsonl")
    p.add_argument("--output-details", action="store_true", help="per-request arrays in the record")
    p.add_argument(
        "--measure-client-overhead",
        action="store_true",
        help="load an instant local server instead (no --base-url needed)",
    )
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if a.measure_client_overhead:
        recs = [
            measure_client_overhead(num_prompts=a.num_prompts or 500, max_concurrency=c)
            for c in (1, None)
        ]
    else:
        recs = [serving_record(dataclass_from_args(LoadConfig, a), output_details=a.output_details)]
    append_jsonl(a.output_file, *recs)
    for r in recs:
        m = {k: v for k, v in r["metrics"].items() if k not in ("details", "gpu_memory")}
        print(
            json.dumps(
                {
                    "config": {k: r["config"].get(k) for k in ("qps", "max_concurrency")},
                    "metrics": m,
                },
                indent=1,
                default=str,
            )
        )
    print(f"appended {len(recs)} record(s) to {a.output_file}")


if __name__ == "__main__":
    main()
