"""Choosing a TCP port for a server that another process will bind.

A port chosen in advance and bound later can be taken in between. The kernel hands out
ports from its ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``) to every
``connect()`` and to every listener bound to port 0 (gloo, TCPStore, ``free_port``-style
helpers), so a number drawn from that range is the one most likely to be taken. The
chooser here draws at random from *below* that range (or above it where there is no
room below), checks that the port can be bound right now, and leaves the rest to the
caller: a server that then fails to bind must be started again on another port
(``ServerProcess`` does that). Where the binding process can bind the port itself, that
is better still: ``launch_server`` binds its HTTP socket before it starts anything.

:func:`post_json` is the one JSON request our clients send to a server (``/generate`` and
the like), always with a timeout.
"""

from __future__ import annotations

import errno
import json
import random
import socket
import urllib.request
from pathlib import Path
from typing import Any

__all__ = [
    "EPHEMERAL_RANGE_FILE",
    "PortInUseError",
    "ephemeral_range",
    "port_candidates",
    "port_is_free",
    "pick_port",
    "free_port",
    "post_json",
]

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
# where the file is absent (not Linux): treat both Linux's default range and IANA's
# dynamic range as ephemeral
_FALLBACK_EPHEMERAL = (32768, 65535)
_LOWEST = 10000  # below this sit well-known services (8000, 8080, 9000, ...)
# sglang chooses its own ports at ``--port + 100 .. + 1000`` (stepping by 42): keep those
# clear of the ephemeral range too
_HEADROOM = 2000


class PortInUseError(OSError):
    """A port could not be bound because something else holds it."""


def ephemeral_range(path: str | Path = EPHEMERAL_RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range ``(low, high)``, inclusive.

    Read from ``path``; where it is absent or unreadable, ``(32768, 65535)``.
    """
    try:
        lo, hi = (int(v) for v in Path(path).read_text().split()[:2])
    except (OSError, ValueError):
        return _FALLBACK_EPHEMERAL
    if not 1 <= lo <= hi <= 65535:
        return _FALLBACK_EPHEMERAL
    return lo, hi


def port_candidates(ephemeral: tuple[int, int] | None = None) -> range:
    """The ports the chooser draws from: the larger gap below or above the ephemeral range.

    Where neither gap holds 100 ports (a range widened to nearly everything), any
    unprivileged port: the retry on a bind failure still covers a collision.
    """
    lo, hi = ephemeral or ephemeral_range()
    below = range(_LOWEST, lo - _HEADROOM)
    above = range(hi + 1, 65536 - _HEADROOM)
    best = max(below, above, key=len)
    return best if len(best) >= 100 else range(1024, 65536 - _HEADROOM)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if ``port`` can be bound on ``host`` right now (as servers bind: SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick_port(
    host: str = "127.0.0.1",
    *,
    tries: int = 100,
    ephemeral: tuple[int, int] | None = None,
    exclude: set[int] | frozenset[int] = frozenset(),
    rng: random.Random | None = None,
) -> int:
    """A port outside the kernel's ephemeral range that ``host`` can bind right now.

    The port is not held: the server that binds it may still lose it to another
    chooser, so a server start that fails to bind must be retried on another port.
    ``exclude`` are ports not to return (e.g. the ones a retry already tried).
    """
    candidates = port_candidates(ephemeral)
    rng = rng or random.SystemRandom()
    for _ in range(tries):
        port = rng.choice(candidates)
        if port not in exclude and port_is_free(port, host):
            return port
    raise PortInUseError(
        errno.EADDRINUSE,
        f"no free port on {host} after {tries} tries in {candidates.start}-{candidates.stop - 1}",
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Deprecated name of :func:`pick_port` (it no longer asks the OS for port 0)."""
    return pick_port(host)


def post_json(url: str, body: Any, *, timeout: float, headers: dict[str, str] | None = None) -> Any:
    """POST ``body`` as JSON to ``url`` and return the decoded answer; ``urllib`` raises
    (an ``OSError``: HTTP error, refused, timed out after ``timeout`` s) on failure."""
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())
