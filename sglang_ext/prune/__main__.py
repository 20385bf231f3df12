"""``python -m sglang_ext.prune SRC DST --expert {INDEX,most-used,mean}``.

The flags are generated from the fields of ``PruneConfig`` (kebab-case), their help from the
field docstrings.
"""

from __future__ import annotations

import argparse
import logging
import sys

from sglang_ext.cli import add_dataclass_args

from .config import PruneConfig
from .core import prune

_POSITIONAL = ("src", "dst")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sglang_ext.prune",
        description="Prune a Qwen3-MoE checkpoint to a single expert per MoE layer.",
    )
    add_dataclass_args(p, PruneConfig, positional=_POSITIONAL)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = PruneConfig(**vars(args))
        dst = prune(cfg)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(dst)
    return 0


if __name__ == "__main__":
    sys.exit(main())
