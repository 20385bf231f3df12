"""Print the environment: GPUs, versions, NCCL, peer access, topology, sglang patch status.

python bench/env_check.py [--output-file bench/results/env.jsonl]
"""

from __future__ import annotations

import argparse
import json

from sglang_ext.perf.comm.envcheck import env_report
from sglang_ext.perf.records import append_jsonl, make_record


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--output-file", default=None, help="also append an env_check record here")
    a = p.parse_args()
    rep = env_report()
    topo = rep.pop("topology")
    print(json.dumps(rep, indent=1, default=str))
    print("topology (nvidia-smi topo -m):\n" + (topo or "n/a (no nvidia-smi)"))
    if a.output_file:
        append_jsonl(
            a.output_file, make_record("env_check", {}, {**rep, "topology": topo}, env=rep["env"])
        )


if __name__ == "__main__":
    main()
