"""Runtime hooks into sglang 0.4.7's HTTP server, installed by ``launch_server`` only.

They run in the launcher process (the one that serves HTTP), so a swap of functions is
enough and no source patch is needed:

- ``uvicorn.run`` (as ``http_server`` calls it) serves on the socket ``launch_server``
  bound before the model loaded, and when uvicorn returns, the launcher ends at once
  through :meth:`Supervisor.exit`: sglang's ``finally: warmup_thread.join()`` would
  otherwise hold a failed server for up to 120 x 6 s of warm-up retries.
- ``kill_process_tree(own pid)``, how sglang ends its server (SIGTERM drained, a child's
  SIGQUIT, a failed warm-up, a tokenizer-manager crash), becomes :meth:`Supervisor.exit`:
  the tree is terminated and the launcher exits 0 after a requested shutdown, 1 after a
  failure, instead of SIGKILLing itself (rc 137).
- sglang's SIGTERM handler first tells the supervisor that a shutdown was asked for.
- ``/health`` and ``/health_generate`` answer 503 until the warm-up request is done
  (sglang 0.4.7 answers 200 a few seconds before).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from types import SimpleNamespace

from sglang_ext.serving.lifecycle import Supervisor

__all__ = ["SglangHooks", "WarmupGate"]

logger = logging.getLogger(__name__)

_KILL_TREE_USERS = (
    "sglang.srt.entrypoints.engine",
    "sglang.srt.entrypoints.http_server",
    "sglang.srt.managers.tokenizer_manager",
)


class WarmupGate:
    """ASGI middleware: 503 on the health routes until ``ready`` is set."""

    GATED = ("/health", "/health_generate")

    def __init__(self, app, ready: threading.Event) -> None:
        self.app, self.ready = app, ready

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in self.GATED and not self.ready.is_set():
            body = b'{"detail": "warming up"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class SglangHooks:
    """``install()`` the hooks (the sglang modules must be importable); ``uninstall()``
    restores the originals (for tests: the launcher itself never returns)."""

    def __init__(self, supervisor: Supervisor, sock: socket.socket, ready: threading.Event):
        self.supervisor, self.sock, self.ready = supervisor, sock, ready
        self._saved: list[tuple[object, str, object]] = []
        self._app = None

    def _swap(self, owner: object, name: str, new: object) -> None:
        self._saved.append((owner, name, getattr(owner, name)))
        setattr(owner, name, new)

    def install(self) -> None:
        if self._saved:
            logger.warning("sglang hooks already installed")
            return
        import importlib

        from sglang.srt.entrypoints import http_server
        from sglang.srt.managers import tokenizer_manager

        self._swap(http_server, "uvicorn", SimpleNamespace(run=self._run_uvicorn))
        for name in _KILL_TREE_USERS:
            mod = importlib.import_module(name)
            self._swap(mod, "kill_process_tree", self._kill_tree(mod.kill_process_tree))
        handler = tokenizer_manager.SignalHandler
        self._swap(handler, "sigterm_handler", self._sigterm(handler.sigterm_handler))
        http_server.app.add_middleware(WarmupGate, ready=self.ready)
        self._app = http_server.app

    def uninstall(self) -> None:
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()
        if self._app is not None:
            self._app.user_middleware = [
                m for m in self._app.user_middleware if m.cls is not WarmupGate
            ]
            self._app = None

    # -- the replacements -----------------------------------------------------------
    def _run_uvicorn(self, app, **kwargs) -> None:
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(app, **kwargs))
        try:
            server.run(sockets=[self.sock])
        except BaseException as e:  # noqa: BLE001 - whatever ended uvicorn ends the launcher
            logger.error("the HTTP server failed: %r", e)
        sup = self.supervisor
        if sup.stopping or (server.started and server.should_exit):
            sup.exit(0, "HTTP server stopped; shutdown complete")
        sup.exit(1, f"the HTTP server on port {self.sock.getsockname()[1]} ended unexpectedly")

    def _kill_tree(self, original):
        sup = self.supervisor

        def kill_process_tree(parent_pid, include_parent=True, skip_pid=None):
            if include_parent and parent_pid == os.getpid():  # sglang ends this server
                if sup.stopping:
                    sup.exit(0, "shutdown complete")
                # a SIGKILLed rank is an unreaped zombie here; the watchdog may have seen
                # it die first (and be waiting out its grace period), so use every death
                sup.check_children()
                note = "".join(f"{d}; " for d in sup.deaths)
                sup.exit(1, f"{note}sglang stopped the server after a failure (see the log above)")
            return original(parent_pid, include_parent=include_parent, skip_pid=skip_pid)

        return kill_process_tree

    def _sigterm(self, original):
        sup = self.supervisor

        def sigterm_handler(handler_self, signum=None, frame=None):
            sup.request_stop("SIGTERM")
            return original(handler_self, signum, frame)

        return sigterm_handler
