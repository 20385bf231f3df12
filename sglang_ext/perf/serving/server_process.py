"""Start a server command line, wait until it is ready *as this server*, stop its whole group.

``ServerProcess`` runs the command in a new session (its own process group). While it
starts, every poll (each with a deadline) checks, in order:

- the log: a bind error ("address already in use") or a Python traceback fails at once,
  with the log's tail;
- the leader and every watched child (processes titled ``sglang::...``): one that is
  gone fails at once, naming it;
- the port: the listener must belong to the server's own process tree. A port that
  answers while no process of the tree listens on it is held by someone else;
- the ready paths: every one must answer 200 within ``probe_timeout_s`` (a total
  deadline per request, not per socket operation);
- ``/get_model_info`` must name the model the server was given (``expect_model``, or
  the command's ``--model-path``).

Put ``{port}`` in ``base_url`` (and in the command) to let it choose the port: one
outside the kernel's ephemeral range (:func:`sglang_ext.net.pick_port`); a start that
fails to bind is then retried on another port, ``port_tries`` times in all. On exit it
sends SIGTERM to the group, SIGKILL after a grace period, and checks nothing is left.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

import psutil

from sglang_ext.net import free_port, pick_port, port_is_free
from sglang_ext.perf.serving.server_probes import (
    LogWatch,
    accepts,
    cmdline_title,
    describe_pid,
    http_get,
    http_ok,
    is_alive,
    listener_pids,
    listens_on,
)

__all__ = [
    "ServerProcess",
    "ServerStartError",
    "ServerBindError",
    "free_port",
    "http_get",
    "http_ok",
    "listener_pids",
    "run_in_group",
]

logger = logging.getLogger(__name__)


class ServerStartError(RuntimeError):
    """The server failed while starting (it died, printed a traceback, or is not itself)."""


class ServerBindError(ServerStartError):
    """The server could not have its port: something else holds it."""


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(
    proc: subprocess.Popen, grace_s: float, extra: Sequence[psutil.Process] = ()
) -> None:
    """SIGTERM ``proc``'s group (skipped when grace_s is 0), SIGKILL after ``grace_s``;
    then SIGKILL any of ``extra`` (tree members that left the group) still alive."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    steps = (
        ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0))
        if grace_s
        else ((signal.SIGKILL, 10.0),)
    )
    for sig, wait_s in steps:
        if not _group_alive(pgid):
            break
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader so the group can disappear
            if not _group_alive(pgid):
                break
            time.sleep(0.1)
    left = [p for p in extra if is_alive(p)]
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=10)
    proc.poll()
    if _group_alive(pgid):
        raise RuntimeError(f"server process group {pgid} survived SIGKILL")


def run_in_group(
    cmd: Sequence[str],
    *,
    timeout_s: float,
    log_path: str | Path | None = None,
    env: dict[str, str] | None = None,
) -> int | None:
    """Run ``cmd`` to completion in its own process group; its exit code, or None if it ran
    past ``timeout_s``. Whatever it left behind in its group is SIGKILLed either way."""
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    finally:
        if log_path:
            out.close()
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        rc = None
    finally:
        _stop_group(proc, 0)
        proc.wait()
    return rc


def _flag(cmd: Sequence[str], flag: str) -> str | None:
    for i, a in enumerate(cmd):
        if a == flag and i + 1 < len(cmd):
            return cmd[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def _same_model(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


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
        expect_model: str | None = None,
        probe_timeout_s: float = 5.0,
        port_tries: int = 3,
        watch_children: str = r"^sglang::",
        poll_s: float = 0.25,
    ) -> None:
        if not cmd:
            raise ValueError("empty server command line")
        if port_tries < 1:
            raise ValueError(f"port_tries must be >= 1, got {port_tries}")
        self._cmd_template = list(cmd)
        self._url_template = base_url.rstrip("/")
        self.auto_port = "{port}" in self._url_template
        self.ready_paths = tuple(ready_paths)
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.env = env
        self.log_path = (
            Path(log_path)
            if log_path
            else Path(tempfile.mkstemp(prefix="server_", suffix=".log")[1])
        )
        self.expect_model = expect_model or _flag(self._cmd_template, "--model-path")
        self.probe_timeout_s = probe_timeout_s
        self.port_tries = port_tries if self.auto_port else 1
        self.watch_children = re.compile(watch_children)
        self.poll_s = poll_s
        self.proc: subprocess.Popen | None = None
        self.startup_s: float | None = None
        self.ports_tried: list[int] = []
        self._set_port(None)
        self._tree: dict[int, tuple[psutil.Process, str]] = {}

    def _set_port(self, port: int | None) -> None:
        """Fill ``{port}`` in (None: leave the templates as they are)."""
        sub = (lambda s: s.replace("{port}", str(port))) if port else (lambda s: s)
        self.cmd = [sub(a) for a in self._cmd_template]
        self.base_url = sub(self._url_template)
        parts = urllib.parse.urlsplit(self._url_template.replace("{port}", "1"))
        self.host = parts.hostname or "127.0.0.1"
        self.port = port if self.auto_port else (parts.port or 80)

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def _fail(self, cls: type[Exception], msg: str) -> Exception:
        return cls(
            f"{msg}\ncommand: {' '.join(self.cmd)}\nlast log lines ({self.log_path}):\n{self.log_tail()}"
        )

    def start(self) -> None:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        for attempt in range(1, self.port_tries + 1):
            if self.auto_port:
                self._set_port(pick_port(self.host, exclude=set(self.ports_tried)))
            self.ports_tried.append(self.port)
            try:
                self._start_once()
                return
            except ServerBindError as e:
                self.stop()
                if attempt == self.port_tries:
                    raise
                logger.warning(
                    "port %s was taken (%s); starting again on another port",
                    self.port,
                    str(e).splitlines()[0],
                )

    def _start_once(self) -> None:
        if not port_is_free(self.port, self.host):
            holders = (
                ", ".join(sorted(map(describe_pid, listener_pids(self.port)))) or "another socket"
            )
            raise self._fail(
                ServerBindError, f"port {self.port} on {self.host} is already in use by {holders}"
            )
        logger.info("starting server: %s (log %s)", " ".join(self.cmd), self.log_path)
        with self.log_path.open("wb") as f:
            self.proc = subprocess.Popen(
                self.cmd,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(self.env or {})},
            )
        self._tree = {}
        watch = LogWatch(self.log_path)
        t0 = time.monotonic()
        deadline = t0 + self.ready_timeout_s
        while True:
            self._check_alive(watch)
            if self._tree_listens():
                if self._probe(deadline):
                    self._check_model()
                    self.startup_s = time.monotonic() - t0
                    logger.info("server ready at %s after %.1f s", self.base_url, self.startup_s)
                    return
            elif accepts(self.host, self.port):
                self._refresh_tree()
                if not self._tree_listens():
                    holders = (
                        ", ".join(sorted(map(describe_pid, listener_pids(self.port))))
                        or "another process"
                    )
                    raise self._fail(
                        ServerBindError,
                        f"port {self.port} answers, but no process of the server (pid "
                        f"{self.proc.pid}) listens on it: it is held by {holders}",
                    )
            if time.monotonic() > deadline:
                raise self._fail(
                    TimeoutError,
                    f"server not ready at {self.base_url}{list(self.ready_paths)} after "
                    f"{self.ready_timeout_s:.0f} s (raise ready_timeout_s if loading is slow)",
                )
            time.sleep(self.poll_s)

    def _refresh_tree(self) -> None:
        try:
            leader = psutil.Process(self.proc.pid)
            seen: dict[int, str] = {}
            for p in [leader, *leader.children(recursive=True)]:
                if not is_alive(p):
                    continue
                try:
                    title = cmdline_title(p)
                    parent_title = seen.get(p.ppid())
                except psutil.Error:
                    continue
                if not title:
                    # exiting: the kernel has dropped its command line (a short-lived fork
                    # seen at its end would read as its 15-character comm, unlike its
                    # parent's title); not a child to start watching
                    continue
                seen[p.pid] = title
                if title == parent_title:
                    # a fork that has not exec'd yet (or never will) inherits its
                    # parent's title; its exit is not the parent's death
                    continue
                self._tree[p.pid] = (p, title)
        except psutil.Error:
            pass

    def _check_alive(self, watch: LogWatch) -> None:
        self._refresh_tree()
        found = watch.scan()
        if found == "bind":
            raise self._fail(
                ServerBindError,
                f"the server could not bind port {self.port} (address already in use)",
            )
        if self.proc.poll() is not None:
            raise self._fail(
                ServerStartError,
                f"server (pid {self.proc.pid}) exited with code {self.proc.returncode} before it was ready",
            )
        if found == "traceback":
            raise self._fail(ServerStartError, "the server printed a traceback while starting")
        for pid, (p, title) in self._tree.items():
            if self.watch_children.search(title) and not is_alive(p):
                raise self._fail(
                    ServerStartError,
                    f"server child process {title} (pid {pid}) died while starting",
                )

    def _tree_listens(self) -> bool:
        return listens_on([p for p, _ in self._tree.values()], self.port)

    def _probe(self, deadline: float) -> bool:
        for path in self.ready_paths:
            left = deadline - time.monotonic()
            res = http_get(self.base_url + path, max(0.1, min(self.probe_timeout_s, left)))
            if res is None or res[0] != 200:
                return False
        return True

    def _check_model(self) -> None:
        if not self.expect_model:
            return
        res = http_get(self.base_url + "/get_model_info", self.probe_timeout_s)
        try:
            served = json.loads(res[1])["model_path"] if res and res[0] == 200 else None
        except (ValueError, KeyError, TypeError):
            served = None
        if served is None or not _same_model(served, self.expect_model):
            raise self._fail(
                ServerStartError,
                f"the server at {self.base_url} serves model {served!r}, not {self.expect_model!r} "
                f"(the one it was started with)",
            )

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after ``stop_timeout_s``; no leftovers."""
        if self.proc is None:
            return
        _stop_group(self.proc, self.stop_timeout_s, [p for p, _ in self._tree.values()])
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
