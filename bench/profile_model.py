"""Per-layer per-op profile of a decoder (Kineto trace per rank + analysis record).

python bench/profile_model.py                                  # one GPU (or CPU)
torchrun --nproc-per-node 2 bench/profile_model.py --tp-allreduce   # + comm after each layer
python bench/profile_model.py --model qwen3 --layers 4 --hidden 512  # HF Qwen3 (random weights)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

from sglang_ext.perf.cli import add_dataclass_args, dataclass_from_args  # noqa: E402
from sglang_ext.perf.dist_env import init_dist  # noqa: E402
from sglang_ext.perf.profiler import ProfileConfig, profile_model  # noqa: E402
from sglang_ext.perf.records import append_jsonl, make_record  # noqa: E402
from sglang_ext.perf.toy_model import build_model  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_dataclass_args(p, ProfileConfig)
    p.add_argument("--model", default="toy", choices=("toy", "qwen3"))
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--ffn", type=int, default=8192)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--dtype", default="bfloat16" if torch.cuda.is_available() else "float32")
    p.add_argument("--tp-allreduce", action="store_true", help="all-reduce each layer's output")
    p.add_argument("--output-file", default="bench/results/profile.jsonl")
    a = p.parse_args()
    cfg = dataclass_from_args(ProfileConfig, a)
    distributed = "WORLD_SIZE" in os.environ or a.tp_allreduce
    group, device = (
        init_dist()
        if distributed
        else (None, torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    )
    rank = dist.get_rank(group) if group is not None else 0
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING, format="%(message)s")
    torch.manual_seed(0)
    model = build_model(
        a.model,
        hidden=a.hidden,
        ffn=a.ffn,
        heads=a.heads,
        layers=a.layers,
        vocab=a.vocab,
        group=group if a.tp_allreduce else None,
    )
    model = model.to(device=device, dtype=getattr(torch, a.dtype)).eval()
    ids = torch.randint(0, a.vocab, (a.batch, a.seq_len), device=device)

    def step() -> None:
        with torch.inference_mode():
            model(ids)

    res = profile_model(model, step, cfg, rank=rank, device=device)
    config = {
        **asdict(cfg),
        **{
            k: getattr(a, k)
            for k in (
                "model",
                "layers",
                "hidden",
                "ffn",
                "heads",
                "vocab",
                "batch",
                "seq_len",
                "dtype",
                "tp_allreduce",
            )
        },
        "world_size": dist.get_world_size(group) if group is not None else 1,
    }
    append_jsonl(
        Path(a.output_file).with_name(f"{Path(a.output_file).stem}_rank{rank}.jsonl"),
        make_record("profile", config, res),
    )
    logging.getLogger().info(
        "compute %.0f us, comm %.0f us (exposed %.0f us), top: %s",
        res["breakdown"]["compute_us"],
        res["breakdown"]["comm_us"],
        res["breakdown"]["exposed_comm_us"],
        res["bottlenecks"][:3],
    )
    if group is not None:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
