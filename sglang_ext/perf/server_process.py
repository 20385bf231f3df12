"""Start a server command line, wait until it is ready, and stop its whole process group.

``ServerProcess`` runs the command in a new session (its own process group), polls
``base_url + ready_path`` until HTTP 200, and on exit sends SIGTERM to the group, then
SIGKILL after a grace period, and checks that no process of the group is left.
A server that dies while starting raises with the tail of its log.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from sglang_ext.net import free_port

__all__ = ["ServerProcess", "free_port", "http_ok"]

log = logging.getLogger(__name__)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ServerProcess:
    """``with ServerProcess(cmd, base_url) as srv: ...`` starts, waits ready, then stops all."""

    def __init__(
        self,
        cmd: Sequence[str],
        base_url: str,
        *,
        ready_paths: Sequence[str] = ("/health", "/get_model_info"),
        ready_timeout_s: float = 600.0,
        stop_timeout_s: float = 30.0,
        env: dict[str, str] | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        if not cmd:
            raise ValueError("empty server command line")
        self.cmd = list(cmd)
        self.base_url = base_url.rstrip("/")
        self.ready_paths = tuple(ready_paths)
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.env = env
        self.log_path = (
            Path(log_path)
            if log_path
            else Path(tempfile.mkstemp(prefix="server_", suffix=".log")[1])
        )
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def start(self) -> None:
        log.info("starting server: %s (log %s)", " ".join(self.cmd), self.log_path)
        env = {**os.environ, **(self.env or {})}
        with self.log_path.open("wb") as f:
            self.proc = subprocess.Popen(
                self.cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        t0 = time.perf_counter()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with code {self.proc.returncode} before it was ready; "
                    f"command: {' '.join(self.cmd)}\nlast log lines:\n{self.log_tail()}"
                )
            if any(http_ok(self.base_url + p) for p in self.ready_paths):
                self.startup_s = time.perf_counter() - t0
                log.info("server ready after %.1f s", self.startup_s)
                return
            if time.perf_counter() - t0 > self.ready_timeout_s:
                self.stop()
                raise TimeoutError(
                    f"server not ready at {self.base_url}{list(self.ready_paths)} after "
                    f"{self.ready_timeout_s:.0f} s (raise ready_timeout_s if loading is slow)\n"
                    f"last log lines:\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after ``stop_timeout_s``; no leftovers."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        for sig, wait_s in ((signal.SIGTERM, self.stop_timeout_s), (signal.SIGKILL, 10.0)):
            if not _group_alive(pgid):
                break
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            deadline = time.perf_counter() + wait_s
            while time.perf_counter() < deadline:
                self.proc.poll()  # reap the leader so the group can disappear
                if not _group_alive(pgid):
                    break
                time.sleep(0.1)
        self.proc.poll()
        if _group_alive(pgid):
            raise RuntimeError(f"server process group {pgid} survived SIGKILL")
        self.proc = None

    def __enter__(self) -> ServerProcess:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
