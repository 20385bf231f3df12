"""``python -m sglang_ext.patch {status,check,apply,revert} [--target PATH]``.

Default target: the installed sglang package. Exit status 0 on success, 1 with a
message on stderr when the operation is refused (nothing is changed then), 130
when interrupted (Ctrl-C or SIGTERM: a change under way is rolled back first).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
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


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with contextlib.suppress(ValueError):  # ValueError: not the main thread
        # roll back on SIGTERM as on Ctrl-C; and on SIGINT even where it was inherited as
        # ignored (a job started with `&` from a script): a signal sent is a stop asked for
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
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
    except KeyboardInterrupt:
        print(
            f"interrupted: {args.command} stopped before it finished; a change under way "
            f"was rolled back (`python -m sglang_ext.patch status` shows the tree's state)",
            file=sys.stderr,
        )
        return 130
    print(f"{st.target}: sglang {st.version}: {st.state.value} ({st.detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
