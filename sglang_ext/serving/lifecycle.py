"""The launcher's own lifecycle: its HTTP socket, its children, and how it ends.

- :func:`bind_http` binds the HTTP port first thing, before the model loads, so no other
  process can take it in between and a port in use fails in a second, naming the port.
- :class:`Supervisor` watches the processes sglang spawns (titled ``sglang::...`` or
  still starting under multiprocessing's ``spawn``): one that dies, during start-up or
  serving, ends the launcher within ``poll_s + grace_s`` with a message naming it.
  Every end goes through :meth:`Supervisor.exit`: the whole process tree is terminated
  (SIGTERM, then SIGKILL) and the launcher exits with its own code: 0 after a requested
  shutdown (SIGTERM, Ctrl-C), non-zero after a failure. A requested shutdown that does
  not finish within ``stop_deadline_s`` is finished by force.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import threading
import time

import psutil

from sglang_ext.net import PortInUseError

__all__ = ["bind_http", "Supervisor"]

logger = logging.getLogger(__name__)


def bind_http(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, so the port is ours alone
    (a socket only bound is not: another SO_REUSEADDR bind would succeed). Connections
    wait in its backlog until the HTTP server serves. Raises :class:`PortInUseError`
    naming the port."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as e:
        raise PortInUseError(errno.EADDRNOTAVAIL, f"cannot resolve --host {host}: {e}") from e
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as e:
        sock.close()
        hint = (
            f"another process holds port {port}: stop it or choose another --port"
            if e.errno == errno.EADDRINUSE
            else "choose another --port or --host"
        )
        raise PortInUseError(
            e.errno, f"cannot bind the HTTP port {port} on {host}: {e.strerror} ({hint})"
        ) from None
    return sock


def _title(p: psutil.Process) -> str:
    """The command line (a renamed process: its full title); '?' once it is gone."""
    try:
        return " ".join(p.cmdline()).strip() or "?"
    except psutil.Error:
        return "?"


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _watched(title: str) -> bool:
    return title.startswith("sglang::") or "multiprocessing.spawn" in title


def _exit_note(p: psutil.Process) -> str:
    try:
        code = p.wait(timeout=0)  # our own child not yet reaped: its exit status
    except (psutil.Error, ChildProcessError):
        return ""
    if code is None:
        return ""
    if code < 0:
        try:
            return f" (killed by {signal.Signals(-code).name})"
        except ValueError:
            return f" (killed by signal {-code})"
    return f" (exit code {code})"


class Supervisor:
    """Watches this process's server children and ends the whole tree, once."""

    def __init__(
        self,
        *,
        poll_s: float = 0.5,
        grace_s: float = 1.5,
        term_s: float = 5.0,
        stop_deadline_s: float = 60.0,
    ) -> None:
        self.poll_s, self.grace_s, self.term_s = poll_s, grace_s, term_s
        self.stop_deadline_s = stop_deadline_s
        self.stopping = False
        self._me = psutil.Process()
        self._seen: dict[int, tuple[psutil.Process, str]] = {}
        self.deaths: list[str] = []
        """Every watched child seen dead, in order ("server process T (pid N) died ...")."""
        self._lock = threading.RLock()  # a signal may arrive while exiting
        self._halt = threading.Event()

    # -- ending ---------------------------------------------------------------------
    def request_stop(self, why: str) -> None:
        """A shutdown was asked for (the exit code will be 0); force it after the deadline."""
        if self.stopping:
            return
        self.stopping = True
        logger.info("%s: shutting down", why)
        timer = threading.Timer(
            self.stop_deadline_s,
            self.exit,
            (0, f"shutdown not finished after {self.stop_deadline_s:.0f} s; stopping now"),
        )
        timer.daemon = True
        timer.start()

    def exit(self, code: int, why: str) -> None:
        """Terminate every descendant, then leave with ``code``. Never returns."""
        with self._lock:  # a second caller waits here until the process is gone
            self._halt.set()
            (logger.info if code == 0 else logger.error)("%s", why)
            logging.disable(logging.CRITICAL)  # sglang's SIGCHLD notes about our own kills
            try:
                tree = self._me.children(recursive=True)
            except psutil.Error:
                tree = []
            # the server processes get SIGTERM and term_s to go; the rest (multiprocessing's
            # resource tracker ignores SIGTERM) and anything left then get SIGKILL
            servers = [p for p in tree if _watched(_title(p))]
            for p in servers:
                try:
                    p.terminate()
                except psutil.Error:
                    pass
            psutil.wait_procs(servers, timeout=self.term_s)
            for p in tree:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(tree, timeout=self.term_s)
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            logging.shutdown()
            os._exit(code)

    def handle_signals(self) -> None:
        """SIGTERM and SIGINT end the launcher now (start-up: nothing to drain yet).
        Call from the main thread; sglang's own draining SIGTERM handler replaces this
        once it serves (see ``sglang_hooks``)."""

        def on_signal(signum, _frame):
            name = signal.Signals(signum).name
            self.request_stop(name)
            self.exit(0, f"{name}: stopped")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # -- watching -------------------------------------------------------------------
    def watch(self) -> None:
        """Start the watchdog thread (daemon)."""
        threading.Thread(target=self._watch, name="sglang-ext-watchdog", daemon=True).start()

    def check_children(self) -> str | None:
        """One look: a message naming a watched child that died since the last look."""
        try:
            kids = self._me.children(recursive=True)
        except psutil.Error:
            return None
        for p in kids:
            title = _title(p)  # sglang renames its processes: keep the latest live title
            if title != "?" and (p.pid not in self._seen or _watched(title)) and _running(p):
                self._seen[p.pid] = (p, title)
        for pid, (p, title) in list(self._seen.items()):
            if _watched(title) and not _running(p):
                del self._seen[pid]
                self.deaths.append(f"server process {title} (pid {pid}) died{_exit_note(p)}")
                return self.deaths[-1]
        return None

    def _watch(self) -> None:
        while not self._halt.wait(self.poll_s):
            dead = self.check_children()
            if dead is None or self.stopping:
                continue
            time.sleep(self.grace_s)  # a group-wide SIGTERM reaches the children first
            if not self.stopping:
                self.exit(1, f"{dead}; stopping the server")
