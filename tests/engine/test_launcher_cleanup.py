"""No rank outlives the engine launcher: SIGKILL, SIGTERM and --max-time-s (psutil checks).

The ranks are a stand-in (``_sleep_rank.py``: one child each, then sleep 300 s), so each
case costs little more than the launcher's start-up.  The launcher's output goes to a file,
not a pipe: a pipe would stay open in any survivor and block the read.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
NPROC = 2


def _start_launcher(out: Path, *extra: str) -> subprocess.Popen:
    # launch() with the stand-in module, run as its own process like the real CLI
    code = (
        "import sys, signal, logging\n"
        "from sglang_ext.engine import launcher as L\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "signal.signal(signal.SIGTERM, L._exit_on_signal)\n"
        f"mt = {extra[0] if extra else None}\n"
        f"sys.exit(L.launch({NPROC}, [{str(out)!r}], module='_sleep_rank', max_time_s=mt))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(ROOT)]))
    with open(out / "launcher.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT
        )


def _wait_ranks(out: Path, launcher: subprocess.Popen, timeout_s: float = 120) -> list[int]:
    """Pids of every rank and rank child, once all ranks have joined the rendezvous."""
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        files = list(out.glob("rank*.pid"))
        if len(files) == NPROC:
            return [int(x) for f in files for x in f.read_text().split()]
        if launcher.poll() is not None:
            log = (out / "launcher.log").read_text()
            pytest.fail(f"launcher exited early ({launcher.returncode}): {log}")
        time.sleep(0.2)
    launcher.kill()
    pytest.fail(f"ranks did not start within {timeout_s}s")


def _survivors(pids: list[int], within_s: float = 20) -> list[int]:
    t_end = time.monotonic() + within_s
    while True:
        alive = []
        for p in pids:
            try:
                if psutil.Process(p).status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > t_end:
            return alive
        time.sleep(0.2)


def _kill_leftovers(pids: list[int]) -> None:
    for p in pids:
        try:
            psutil.Process(p).kill()
        except psutil.NoSuchProcess:
            pass


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "max-time"])
def test_no_rank_survives_the_launcher(tmp_path, how):
    launcher = _start_launcher(tmp_path, "8" if how == "max-time" else "None")
    pids = _wait_ranks(tmp_path, launcher)
    try:
        if how != "max-time":
            launcher.send_signal(getattr(signal, how))
        rc = launcher.wait(timeout=60)
        log = (tmp_path / "launcher.log").read_text()
        # SIGKILL: the kernel kills the ranks (PR_SET_PDEATHSIG); their children, reparented,
        # are not covered by that and are the only thing a SIGKILL can leave behind
        want = pids[0::2] if how == "SIGKILL" else pids
        left = _survivors(want)
        assert not left, f"{how}: processes survived the launcher: {left}\n{log}"
        if how == "SIGTERM":
            assert rc == 128 + signal.SIGTERM and "got SIGTERM; stopping every rank" in log, log
        if how == "max-time":
            assert rc == 124 and "run exceeded 8s; ranks [0, 1] still running" in log, log
    finally:
        _kill_leftovers(pids)
        if launcher.poll() is None:
            launcher.kill()


def test_master_port_in_use_is_named(tmp_path):
    import torch.distributed as dist

    from sglang_ext.engine.launcher import launch

    held = dist.TCPStore("127.0.0.1", 0, 1, is_master=True, wait_for_workers=False)
    with pytest.raises(RuntimeError, match=rf"127.0.0.1:{held.port}.*another --master-port"):
        launch(1, [], master_port=held.port, module="_never_started")
