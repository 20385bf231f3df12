"""Readiness checks for a starting server, each bounded by a deadline.

HTTP GETs with a total deadline (connect, headers and body together), the listeners of a
port and the processes behind them, and a reader of a growing log that spots bind errors
and tracebacks. Used by :class:`sglang_ext.perf.serving.server_process.ServerProcess`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import socket
from collections.abc import Iterable
from pathlib import Path

import psutil

__all__ = [
    "BIND_ERROR",
    "TRACEBACK",
    "LogWatch",
    "accepts",
    "describe_pid",
    "http_get",
    "http_ok",
    "is_alive",
    "listener_pids",
    "listens_on",
    "cmdline_title",
    "process_title",
]

BIND_ERROR = re.compile(r"address already in use|\[Errno 98\]|error while attempting to bind", re.I)
TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.M)


async def _get(url: str, timeout_s: float) -> tuple[int, bytes]:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as s:
        async with s.get(url) as r:
            return r.status, await r.read()


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes] | None:
    """``(status, body)`` of a GET, or None on any failure; ``timeout`` bounds the whole
    request (connect, headers and body), so a server that trickles bytes cannot hold it."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no event loop in this thread
        run = asyncio.run
    else:  # called from async code: run the request on a thread of its own

        def run(coro):
            with concurrent.futures.ThreadPoolExecutor(1) as ex:
                return ex.submit(asyncio.run, coro).result()

    try:
        return run(_get(url, timeout))
    except Exception:  # noqa: BLE001 - any failure (refused, reset, timeout, bad URL) is "no"
        return None


def http_ok(url: str, timeout: float = 2.0) -> bool:
    res = http_get(url, timeout)
    return res is not None and res[0] == 200


def listener_pids(port: int) -> set[int | None]:
    """Pids with a TCP socket listening on ``port`` (None: a process we may not inspect)."""
    return {
        c.pid
        for c in psutil.net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
    }


def cmdline_title(p: psutil.Process) -> str:
    """The command line (or title, e.g. ``sglang::scheduler_TP0``) of ``p``, shortened; ''
    when the kernel has dropped it (the process is exiting). Raises ``psutil.Error``."""
    return " ".join(p.cmdline()).strip()[:120]


def process_title(p: psutil.Process) -> str:
    """:func:`cmdline_title`, else the 15-character comm; '?' when ``p`` is gone."""
    try:
        return cmdline_title(p) or p.name()
    except psutil.Error:
        return "?"


def describe_pid(pid: int | None) -> str:
    """``pid N (its command line)``, for messages."""
    if pid is None:
        return "a process this user cannot inspect"
    try:
        return f"pid {pid} ({process_title(psutil.Process(pid))})"
    except psutil.Error:
        return f"pid {pid}"


def is_alive(p: psutil.Process) -> bool:
    """Running and not a zombie."""
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def accepts(host: str, port: int) -> bool:
    """True if a TCP connect to ``host:port`` succeeds within 0.5 s."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def listens_on(procs: Iterable[psutil.Process], port: int) -> bool:
    """True if one of ``procs`` has a TCP socket listening on ``port``."""
    for p in procs:
        try:
            if any(
                c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port
                for c in p.net_connections(kind="tcp")
            ):
                return True
        except psutil.Error:
            continue
    return False


class LogWatch:
    """Reads a growing log from where it left off and spots bind errors and tracebacks."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.carry = path, 0, ""

    def scan(self) -> str | None:
        """'bind' or 'traceback' if the lines written since the last scan show one, else None."""
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                new = f.read()
        except OSError:
            return None
        self.offset += len(new)
        text = self.carry + new.decode(errors="replace")
        cut = text.rfind("\n") + 1
        done, self.carry = text[:cut], text[cut:][-4096:]
        if BIND_ERROR.search(done):
            return "bind"
        if TRACEBACK.search(done):
            return "traceback"
        return None
