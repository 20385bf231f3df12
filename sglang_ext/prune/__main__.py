"""``python -m sglang_ext.prune SRC DST --expert {INDEX,most-used,mean}``.

The flags are generated from the fields of ``PruneConfig`` (kebab-case), their help from the
field docstrings.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import logging
import sys
import textwrap
from pathlib import Path

from .config import PruneConfig
from .core import prune

_POSITIONAL = ("src", "dst")


def _field_docs(cls: type) -> dict[str, str]:
    """Docstrings written under dataclass fields (``x: int`` then ``\"\"\"doc\"\"\"``)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    docs = {}
    for a, b in zip(body, body[1:], strict=False):
        if (
            isinstance(a, ast.AnnAssign)
            and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant)
        ):
            docs[a.target.id] = " ".join(str(b.value.value).split())
    return docs


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sglang_ext.prune",
        description="Prune a Qwen3-MoE checkpoint to a single expert per MoE layer.",
    )
    docs = _field_docs(PruneConfig)
    for f in dataclasses.fields(PruneConfig):
        if not f.init:
            continue
        help_ = docs.get(f.name, "")
        if f.name in _POSITIONAL:
            p.add_argument(f.name, type=Path, help=help_)
            continue
        flag = "--" + f.name.replace("_", "-")
        default = None if f.default is dataclasses.MISSING else f.default
        if f.name == "calibration_prompts":
            p.add_argument(flag, nargs="+", default=(), metavar="PROMPT", help=help_)
        elif f.name == "calibration_file":
            p.add_argument(flag, type=Path, default=default, help=help_)
        elif f.type in ("int", int):
            p.add_argument(flag, type=int, default=default, help=help_)
        else:
            p.add_argument(flag, default=default, required=default is None, help=help_)
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
