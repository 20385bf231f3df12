"""A real patched sglang server for the e2e tests: start it, talk to it (no pytest here).

``start_server`` runs ``python -m sglang_ext.launch_server`` through ``ServerProcess``
(its own process group, readiness with deadlines, stop leaves nothing behind).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from sglang_ext.perf.serving.server_process import ServerProcess, free_port

__all__ = ["READY_TIMEOUT_S", "Server", "post_raw", "start_server"]

READY_TIMEOUT_S = 240.0  # well below pytest's 600 s per test
REQUEST_TIMEOUT_S = 120.0


@dataclasses.dataclass(kw_only=True, slots=True)
class Server:
    """A running patched sglang server."""

    name: str
    """Fixture name (layout key)."""
    url: str
    """Base URL, no trailing slash."""
    proc: ServerProcess | None
    """The process group (``proc.proc.pid`` is the launcher's pid); None for a server
    given by ``SGLANG_EXT_E2E_SERVER_TP1``/``_TP2`` (a URL, for developing tests)."""
    log_path: Path
    """Its combined stdout/stderr."""

    def post(self, path: str, body: Any, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, Any]:
        """(status, parsed JSON body or text) of a POST; 4xx/5xx are returned, not raised."""
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return post_raw(self.url + path, data, timeout)

    def ok(self, path: str, body: Any) -> Any:
        status, out = self.post(path, body)
        assert status == 200, f"{path}: HTTP {status}: {out}"
        return out

    def stream(self, path: str, body: dict, timeout: float = REQUEST_TIMEOUT_S) -> list[Any]:
        """The parsed ``data:`` events of a streaming POST, up to (without) ``[DONE]``."""
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        events = []
        with urllib.request.urlopen(req, timeout=timeout) as r:
            assert r.status == 200, f"{path}: HTTP {r.status}"
            for line in r:
                line = line.strip()
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    return events
                events.append(json.loads(data))
        raise AssertionError(f"{path}: the stream ended without [DONE] after {events[-3:]}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=10) as r:
                return r.status == 200
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def post_raw(url: str, data: bytes, timeout: float = REQUEST_TIMEOUT_S) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def start_server(name: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None):
    """Start ``python -m sglang_ext.launch_server`` with ``args``; the caller stops it."""
    cmd = [sys.executable, "-m", "sglang_ext.launch_server", "--port", "{port}", *args]
    url = "http://127.0.0.1:{port}"
    log_path = log_dir / f"{name}.log"
    kw = dict(ready_timeout_s=READY_TIMEOUT_S, log_path=log_path, env=env)
    proc = ServerProcess(cmd, url, **kw)
    if not getattr(proc, "auto_port", False):
        # a ServerProcess that cannot choose the port itself (and retry a failed bind)
        port = str(free_port())
        proc = ServerProcess(
            [c.replace("{port}", port) for c in cmd], url.replace("{port}", port), **kw
        )
    proc.__enter__()
    # ready (/health 200) only once sglang's warm-up request is done; 0.4.7 says ready before
    if "The server is fired up and ready to roll!" not in log_path.read_text(errors="replace"):
        proc.stop()
        raise AssertionError(f"{name}: /health answered 200 before the warm-up finished")
    return Server(name=name, url=proc.base_url, proc=proc, log_path=log_path)
