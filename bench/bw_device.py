"""Device memory bandwidth, host<->device and GPU-to-GPU copies over a size sweep.

python bench/bw_device.py                       # all GPUs of this host
python bench/bw_device.py --device cpu --max-bytes 64M   # host memory (smoke test)
"""

from __future__ import annotations

import argparse
import logging

import torch

from sglang_ext.cli import parse_size
from sglang_ext.perf.comm.collectives import size_sweep
from sglang_ext.perf.comm.devbw import device_copy_bw, host_device_bw, peer_copy_bw
from sglang_ext.perf.comm.envcheck import gpu_topology
from sglang_ext.perf.records import append_jsonl, collect_env, make_record

logger = logging.getLogger("bw_device")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--min-bytes", type=parse_size, default=1 << 10)
    p.add_argument("--max-bytes", type=parse_size, default=1 << 30)
    p.add_argument("--factor", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--output-file", default="bench/results/bw_device.jsonl")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    env = {**collect_env(), "topology": gpu_topology()}
    cfg = {k: v for k, v in vars(a).items() if k != "output_file"}
    sizes = size_sweep(a.min_bytes, a.max_bytes, a.factor)
    kw = {"warmup": a.warmup, "iters": a.iters}
    rows = []
    if a.device == "cpu":
        rows += [device_copy_bw(s, torch.device("cpu"), **kw) for s in sizes]
    else:
        ndev = torch.cuda.device_count()
        for i in range(ndev):
            d = torch.device("cuda", i)
            rows += [device_copy_bw(s, d, **kw) for s in sizes]
            rows += [
                host_device_bw(s, d, direction, **kw) for direction in ("h2d", "d2h") for s in sizes
            ]
        for i in range(ndev):
            for j in range(ndev):
                if i != j:
                    rows += [
                        peer_copy_bw(s, torch.device("cuda", i), torch.device("cuda", j), **kw)
                        for s in sizes
                    ]
    for r in rows:
        logger.info(
            "%-12s %-8s %12d B  %10.1f us  %8.1f GB/s",
            r["kind"],
            r.get("device", r.get("src")),
            r["size_bytes"],
            r["time_us"],
            r["bw_gbps"],
        )
    append_jsonl(a.output_file, *(make_record("bw_device", cfg, r, env=env) for r in rows))
    logger.info("appended %d records to %s", len(rows), a.output_file)


if __name__ == "__main__":
    main()
