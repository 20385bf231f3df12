"""Single-host launcher: spawns N engine ranks itself and watches them.

    python -m sglang_ext.engine.launcher --nproc-per-node 4 -- --model-path M --sync ring ...

If a rank exits non-zero, the launcher names it, gives the others ``--grace-s`` to fail on
their own (their process-group timeout), then terminates the rest and exits non-zero.
Multi-node runs use torchrun (``--nnodes/--node-rank/--master-addr/--master-port``).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time

from sglang_ext.net import free_port

__all__ = ["launch", "main"]

logger = logging.getLogger(__name__)


def launch(
    nproc: int,
    engine_args: list[str],
    *,
    master_port: int | None = None,
    grace_s: float = 15.0,
    max_time_s: float | None = None,
    module: str = "sglang_ext.engine",
    env: dict[str, str] | None = None,
) -> int:
    """Run ``python -m module engine_args`` as ``nproc`` ranks; return 0 or the first failure's code."""
    if nproc < 1:
        raise ValueError(f"--nproc-per-node must be >= 1, got {nproc}")
    port = master_port or free_port()
    procs: list[subprocess.Popen] = []
    for r in range(nproc):
        e = dict(os.environ if env is None else env)
        e.update(
            RANK=str(r),
            LOCAL_RANK=str(r),
            WORLD_SIZE=str(nproc),
            LOCAL_WORLD_SIZE=str(nproc),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        procs.append(subprocess.Popen([sys.executable, "-m", module, *engine_args], env=e))
    t0 = time.monotonic()
    failed: tuple[int, int] | None = None
    try:
        while True:
            codes = [p.poll() for p in procs]
            bad = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if bad and failed is None:
                failed = bad[0]
                logger.error(
                    "rank %d (pid %d) exited with code %d; waiting %.0fs for the other ranks to stop",
                    failed[0],
                    procs[failed[0]].pid,
                    failed[1],
                    grace_s,
                )
                deadline = time.monotonic() + grace_s
            if all(c is not None for c in codes):
                break
            if failed is not None and time.monotonic() > deadline:
                alive = [r for r, c in enumerate(codes) if c is None]
                logger.error(
                    "ranks %s still running after rank %d died; terminating them", alive, failed[0]
                )
                break
            if max_time_s is not None and time.monotonic() - t0 > max_time_s:
                logger.error("run exceeded %.0fs; terminating all ranks", max_time_s)
                failed = failed or (-1, 124)
                break
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    if failed is not None:
        who = f"rank {failed[0]}" if failed[0] >= 0 else "the run"
        logger.error("launch failed: %s exited first (code %d)", who, failed[1])
        return failed[1] or 1
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sglang_ext.engine.launcher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nproc-per-node", type=int, required=True, help="ranks to spawn on this host")
    p.add_argument(
        "--master-port", type=int, default=None, help="rendezvous port (default: a free one)"
    )
    p.add_argument(
        "--grace-s",
        type=float,
        default=15.0,
        help="after a rank dies, wait this long before killing the rest",
    )
    p.add_argument("--max-time-s", type=float, default=None, help="kill everything after this long")
    p.add_argument("engine_args", nargs=argparse.REMAINDER, help="-- then the engine's flags")
    ns = p.parse_args(argv)
    args = ns.engine_args[1:] if ns.engine_args[:1] == ["--"] else ns.engine_args
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s [launcher] %(levelname)s: %(message)s"
    )
    return launch(
        ns.nproc_per_node,
        args,
        master_port=ns.master_port,
        grace_s=ns.grace_s,
        max_time_s=ns.max_time_s,
    )


if __name__ == "__main__":
    sys.exit(main())
