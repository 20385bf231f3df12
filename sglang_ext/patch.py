"""``python -m sglang_ext.patch {status,check,apply,revert} [--target PATH]``.

Default target: the installed sglang package. Exit status 0 on success, 1 with a
message on stderr when the operation is refused (nothing is changed then).
"""

from __future__ import annotations

import argparse
import logging
import sys

from sglang_ext.patching import source

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sglang_ext.patch", description="Manage sglang-ext's sglang 0.4.7 patches"
    )
    p.add_argument("command", choices=["status", "check", "apply", "revert", "list"])
    p.add_argument(
        "--target",
        default=None,
        help="the sglang package directory (default: the installed sglang)",
    )
    p.add_argument("--patches", default=None, help="patch folder holding `series` (default: ours)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        series = source.PatchSeries.load(args.patches)
        if args.command == "list":
            for name in series.names:
                print(name)
            return 0
        op = {
            "status": source.status,
            "check": source.check,
            "apply": source.apply,
            "revert": source.revert,
        }[args.command]
        st = op(args.target, series)
    except source.PatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{st.target}: sglang {st.version}: {st.state.value} ({st.detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
