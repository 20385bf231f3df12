"""CLI of the SP+PP engine, run once per rank (torchrun or our launcher sets RANK etc.).

    torchrun --nproc-per-node 2 -m sglang_ext.engine --model-path M --chunk-size 128 \\
        --sync ring --prompt "..." --max-new-tokens 32
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from sglang_ext.engine.config import add_cli_args, from_cli_args

__all__ = ["main", "setup_logging"]

logger = logging.getLogger("sglang_ext.engine")


class _RankFilter(logging.Filter):
    """Console: rank 0 logs INFO and up, the others only WARNING and up."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        return self.rank == 0 or record.levelno >= logging.WARNING


def setup_logging(rank: int, log_dir: str | None) -> None:
    fmt = logging.Formatter(f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    console.addFilter(_RankFilter(rank))
    root.addHandler(console)
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(Path(log_dir) / f"rank{rank}.log")
        fh.setFormatter(fmt)
        root.addHandler(fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sglang_ext.engine",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_cli_args(parser)
    ns = parser.parse_args(argv)
    try:
        cfg = from_cli_args(ns)
    except ValueError as e:
        parser.error(str(e))
    rank = int(os.environ.get("RANK", "0"))
    setup_logging(rank, cfg.log_dir)
    logger.info(
        "rank %d: starting (%s)", rank, " ".join(argv if argv is not None else sys.argv[1:])
    )
    from sglang_ext.engine.prefill_engine import run

    try:
        res = run(cfg)
    except Exception as e:
        logger.error("rank %d failed: %s", rank, e)
        return 1
    logger.info("rank %d: done", rank)
    if rank == 0:
        print(" ".join(map(str, res.tokens)))
    return 0
