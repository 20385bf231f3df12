"""Single-host launcher: spawns N engine ranks itself and watches them.

    python -m sglang_ext.engine.launcher --nproc-per-node 4 -- --model-path M --sync ring ...

If a rank exits non-zero, the launcher names it, gives the others ``--grace-s`` to fail on
their own (their process-group timeout), then terminates the rest and exits non-zero.
The launcher hosts the rendezvous store itself (bound on port 0 unless ``--master-port``
is given; the ranks join it as torchrun's workers join their agent's store), so no port
is picked in advance.  No rank outlives the launcher: every exit path (a rank's failure,
``--max-time-s``, Ctrl-C, SIGTERM, SIGHUP, an exception) kills the ranks and their
children, and the ranks get SIGKILL from the kernel if the launcher itself is SIGKILLed
(``PR_SET_PDEATHSIG``).
Multi-node runs use torchrun (``--nnodes/--node-rank/--master-addr/--master-port``).
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

import psutil

__all__ = ["launch", "main"]

logger = logging.getLogger(__name__)
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int):
    """preexec_fn: SIGKILL this child when the launcher dies (Linux), even by SIGKILL."""

    def hook() -> None:
        if sys.platform.startswith("linux"):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent_pid:  # the launcher died before prctl took effect
            os._exit(1)

    return hook


def _rendezvous_store(port: int | None, nproc: int):
    """The store the ranks join (``TORCHELASTIC_USE_AGENT_STORE``); bound here, port 0 = any."""
    import torch.distributed as dist

    try:
        return dist.TCPStore("127.0.0.1", port or 0, nproc, is_master=True, wait_for_workers=False)
    except RuntimeError as e:  # DistNetworkError: the port is taken
        raise RuntimeError(
            f"cannot host the rendezvous on 127.0.0.1:{port}: {e}. Pick another --master-port "
            f"or leave it out (the launcher then binds a free one itself)"
        ) from e


def _kill_all(procs: list[subprocess.Popen], term_wait_s: float = 5.0) -> None:
    """Terminate every rank and its children; SIGKILL whatever is left after ``term_wait_s``."""
    tree: list[psutil.Process] = []
    for p in procs:
        try:
            ps = psutil.Process(p.pid)
            tree += [ps, *ps.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    for ps in tree:
        try:
            ps.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(tree, timeout=term_wait_s)
    for ps in alive:
        try:
            ps.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=term_wait_s)
    for p in procs:
        try:
            p.wait(timeout=term_wait_s)
        except subprocess.TimeoutExpired:
            logger.error("rank pid %d did not exit after SIGKILL", p.pid)


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
    store = _rendezvous_store(master_port, nproc)
    procs: list[subprocess.Popen] = []
    t0 = time.monotonic()
    failed: tuple[int, int] | None = None
    try:
        for r in range(nproc):
            e = dict(os.environ if env is None else env)
            e.update(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(nproc),
                LOCAL_WORLD_SIZE=str(nproc),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(store.port),
                TORCHELASTIC_USE_AGENT_STORE="True",
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module, *engine_args],
                    env=e,
                    preexec_fn=_die_with_parent(os.getpid()),
                )
            )
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
            alive = [r for r, c in enumerate(codes) if c is None]
            if failed is not None and time.monotonic() > deadline:
                logger.error(
                    "ranks %s still running after rank %d died; terminating them", alive, failed[0]
                )
                break
            if max_time_s is not None and time.monotonic() - t0 > max_time_s:
                logger.error(
                    "run exceeded %.0fs; ranks %s still running; terminating all ranks",
                    max_time_s,
                    alive,
                )
                failed = failed or (-1, 124)
                break
            time.sleep(0.1)
    finally:  # every exit path, KeyboardInterrupt and SystemExit (signals) included
        # a second Ctrl-C/SIGTERM must not cut the clean-up short: hold them until it is done
        held = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            _kill_all(procs)
            del store
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    if failed is not None:
        who = f"rank {failed[0]}" if failed[0] >= 0 else "the run"
        logger.error("launch failed: %s exited first (code %d)", who, failed[1])
        return failed[1] or 1
    return 0


def _exit_on_signal(signum: int, _frame: object) -> None:
    logger.error("launcher got %s; stopping every rank", signal.Signals(signum).name)
    raise SystemExit(128 + signum)  # unwinds through launch()'s finally


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m sglang_ext.engine.launcher",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--nproc-per-node", type=int, required=True, help="ranks to spawn on this host")
    p.add_argument(
        "--master-port",
        type=int,
        default=None,
        help="rendezvous port the launcher binds (default: any free one)",
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
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    return launch(
        ns.nproc_per_node,
        args,
        master_port=ns.master_port,
        grace_s=ns.grace_s,
        max_time_s=ns.max_time_s,
    )


if __name__ == "__main__":
    sys.exit(main())
