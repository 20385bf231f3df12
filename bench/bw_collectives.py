"""Collective bandwidth (nccl-tests definitions of size, algbw and busbw).

torchrun --nproc-per-node 8 bench/bw_collectives.py           # NCCL, 1 KB .. 1 GB
python bench/bw_collectives.py                                 # one GPU: world of 1 (degenerate)
python bench/bw_collectives.py --cpu-ranks 2 --max-bytes 1048576   # gloo on CPU
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict

import torch.distributed as dist

from sglang_ext.cli import add_dataclass_args, dataclass_from_args
from sglang_ext.perf.comm.collectives import CollectiveConfig, run_sweep
from sglang_ext.perf.comm.envcheck import gpu_topology
from sglang_ext.perf.dist_env import init_dist, spawn_ranks
from sglang_ext.perf.records import append_jsonl, collect_env, make_record


def _run(rank: int, group, device, cfg: CollectiveConfig, out: str, backend: str) -> None:
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    rows = run_sweep(cfg, group=group, device=device)
    if rank == 0:
        env = {**collect_env(), "topology": gpu_topology(), "backend": backend}
        config = {**asdict(cfg), "backend": backend, "world_size": dist.get_world_size(group)}
        append_jsonl(out, *(make_record("bw_collectives", config, r, env=env) for r in rows))
        logging.getLogger().info("appended %d records to %s", len(rows), out)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_args(p, CollectiveConfig)
    p.add_argument("--backend", default=None, help="nccl (default with CUDA) or gloo")
    p.add_argument("--cpu-ranks", type=int, default=0, help="spawn this many local gloo ranks")
    p.add_argument("--output-file", default="bench/results/bw_collectives.jsonl")
    a = p.parse_args()
    cfg = dataclass_from_args(CollectiveConfig, a)
    if a.cpu_ranks:
        spawn_ranks(_run, a.cpu_ranks, cfg, a.output_file, "gloo")
        return
    group, device = init_dist(a.backend)
    try:
        _run(
            dist.get_rank(),
            group,
            device,
            cfg,
            a.output_file,
            a.backend or ("nccl" if device.type == "cuda" else "gloo"),
        )
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
