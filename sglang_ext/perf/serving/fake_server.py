"""An in-process aiohttp server that streams like sglang, for tests and client overhead.

``POST /generate`` with ``stream: true`` answers sglang-style SSE: ``data: {"text": <all
text so far>, "meta_info": {"completion_tokens": k, ...}}`` per token, then
``data: [DONE]``.  ``POST /v1/completions`` streams OpenAI chunks
``{"choices": [{"text": <new text>}]}``.  ``token_delay_s=0`` makes an instant server,
which measures the client's own overhead.  ``fail_every=k`` answers every k-th request
with HTTP 500 (tests of error accounting).
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["FakeServerConfig", "FakeServer"]


@dataclass(kw_only=True, slots=True)
class FakeServerConfig:
    """Behaviour of the fake server."""

    prefill_delay_s: float = 0.0
    token_delay_s: float = 0.0
    fail_every: int = 0
    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port

    def __post_init__(self) -> None:
        if self.prefill_delay_s < 0 or self.token_delay_s < 0:
            raise ValueError(
                f"delays must be >= 0, got {self.prefill_delay_s}, {self.token_delay_s}"
            )


@dataclass(slots=True)
class _Stats:
    requests: int = 0
    payloads: list = field(default_factory=list)


def _sse(obj: object) -> bytes:
    return b"data: " + (obj if isinstance(obj, bytes) else json.dumps(obj).encode()) + b"\n\n"


class FakeServer:
    """Run the fake server on a background thread: ``with FakeServer(cfg) as url: ...``."""

    def __init__(self, cfg: FakeServerConfig | None = None) -> None:
        self.cfg = cfg or FakeServerConfig()
        self.stats = _Stats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    def _fail(self) -> bool:
        self.stats.requests += 1
        return bool(self.cfg.fail_every) and self.stats.requests % self.cfg.fail_every == 0

    async def _stream(self, request: web.Request, n: int, chunk) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await asyncio.sleep(self.cfg.prefill_delay_s)
        for k in range(1, n + 1):
            if k > 1 and self.cfg.token_delay_s:
                await asyncio.sleep(self.cfg.token_delay_s)
            await resp.write(_sse(chunk(k)))
        await resp.write(_sse(b"[DONE]"))
        await resp.write_eof()
        return resp

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.stats.payloads.append(body)
        if self._fail():
            return web.Response(status=500, reason="fake failure")
        n = int(body["sampling_params"]["max_new_tokens"])
        plen = len(body.get("input_ids") or str(body.get("text", "")).split())
        return await self._stream(
            request,
            n,
            lambda k: {
                "text": "tok " * k,
                "meta_info": {"prompt_tokens": plen, "completion_tokens": k, "id": "fake"},
            },
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.stats.payloads.append(body)
        if self._fail():
            return web.Response(status=500, reason="fake failure")
        n = int(body["max_tokens"])
        return await self._stream(
            request,
            n,
            lambda k: {
                "choices": [{"index": 0, "text": "tok "}],
                "usage": {"completion_tokens": k} if k == n else None,
            },
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _model_info(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"model_path": "fake", "tokenizer_path": None, "is_generation": True}
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/generate", self._generate)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_get("/health", self._health)
        app.router.add_get("/get_model_info", self._model_info)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.cfg.host, self.cfg.port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://{self.cfg.host}:{port}"

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def __enter__(self) -> str:
        self._thread = threading.Thread(target=self._run, name="fake-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("fake server did not start within 10 s")
        return self.url

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._thread is not None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """``python -m sglang_ext.perf.serving.fake_server --port N``: serve until killed."""
    import argparse
    import signal
    import time

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--token-delay-s", type=float, default=0.0)
    p.add_argument("--prefill-delay-s", type=float, default=0.0)
    a, ignored = p.parse_known_args(argv)  # stands in for a launcher: other flags are ignored
    cfg = FakeServerConfig(
        host=a.host, port=a.port, token_delay_s=a.token_delay_s, prefill_delay_s=a.prefill_delay_s
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeServer(cfg):
        while not stop.is_set():
            time.sleep(0.1)


if __name__ == "__main__":
    main()
