"""Shared real servers for the e2e tests: each layout starts once, for the tests that need it.

A test asks for a server through a fixture (``server_tp1``, ``server_tp2``); the first
such test starts it and it stays up while the next collected test needs it too, then
it is stopped (not at the end of the whole session, so the rest of the suite does not
run beside an idle server). Collection puts the tests of one server next to each other,
tests marked ``ends_server`` last among them: those may kill the server they get.

Both servers serve the embedded one-expert default model with ``--single-expert-mode tp``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import torch

from sglang_ext.models.tiny import default_model_path
from sglang_ext.perf.server_process import ServerProcess, free_port

logger = logging.getLogger(__name__)

LAYOUTS = {
    "server_tp1": ["--tp-size", "1", "--single-expert-mode", "tp"],
    "server_tp2": ["--tp-size", "2", "--single-expert-mode", "tp"],
}
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
    import sys

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "sglang_ext.launch_server", "--port", str(port), *args]
    log_path = log_dir / f"{name}.log"
    proc = ServerProcess(cmd, url, ready_timeout_s=READY_TIMEOUT_S, log_path=log_path, env=env)
    proc.__enter__()
    return Server(name=name, url=url, proc=proc, log_path=log_path)


class _Pool:
    """At most one shared server per layout, stopped when the next test does not need it."""

    def __init__(self) -> None:
        self.servers: dict[str, Server] = {}
        self.failed: dict[str, str] = {}

    def get(self, name: str, log_dir: Path) -> Server:
        reuse = os.environ.get(f"SGLANG_EXT_E2E_{name.upper()}")  # developing: a running server
        if reuse:
            return Server(name=name, url=reuse.rstrip("/"), proc=None, log_path=Path(os.devnull))
        if name in self.failed:
            pytest.fail(f"shared server {name} failed to start earlier: {self.failed[name]}")
        srv = self.servers.get(name)
        if srv is None or srv.proc.proc is None or srv.proc.proc.poll() is not None:
            if srv is not None:
                self.stop(name)
            try:
                srv = start_server(name, LAYOUTS[name], log_dir)
            except Exception as e:
                self.failed[name] = str(e)[:2000]
                raise
            self.servers[name] = srv
        return srv

    def stop(self, name: str) -> None:
        srv = self.servers.pop(name, None)
        if srv is not None:
            srv.proc.stop()

    def stop_unneeded(self, next_item: pytest.Item | None) -> None:
        needed = _layouts_of(next_item)
        for name in list(self.servers):
            if name not in needed:
                self.stop(name)


_POOL = _Pool()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "ends_server: may end the shared server it uses; runs last among its users"
    )


def _layouts_of(item: pytest.Item | None) -> set[str]:
    """The shared servers a collected test will ask for (directly or through ``server``)."""
    names = set(getattr(item, "fixturenames", ()) or ())
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "server" in callspec.params:
        names.add(callspec.params["server"])
    return names & set(LAYOUTS)


def _server_key(item: pytest.Item) -> tuple[int, int]:
    names = _layouts_of(item)
    for i, name in enumerate(LAYOUTS):
        if name in names:
            return (i, 1 if item.get_closest_marker("ends_server") else 0)
    return (len(LAYOUTS), 0)


def pytest_collection_modifyitems(session, config, items):
    """Group the e2e tests by shared server (stable within a group), the rest untouched."""
    e2e_dir = Path(__file__).parent
    idx = [i for i, it in enumerate(items) if Path(str(it.fspath)).is_relative_to(e2e_dir)]
    ordered = sorted((items[i] for i in idx), key=_server_key)
    for i, it in zip(idx, ordered, strict=True):
        items[i] = it


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item, nextitem):
    _POOL.stop_unneeded(nextitem)


@pytest.fixture(scope="session")
def server_logs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture
def server_tp1(server_logs) -> Server:
    return _POOL.get("server_tp1", server_logs)


@pytest.fixture
def server_tp2(server_logs) -> Server:
    return _POOL.get("server_tp2", server_logs)


@pytest.fixture(params=["server_tp1", "server_tp2"], ids=["tp1", "tp2"])
def server(request) -> Server:
    """Both layouts: the test runs once on each."""
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return default_model_path()


@pytest.fixture(scope="session")
def hf(model_dir):
    """(HF model in float32, tokenizer): the independent reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="session")
def tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def hf_greedy(model, ids: list[int], n: int, stop: set[int] = frozenset()):
    """Greedy decoding with full forwards (no cache): (tokens, their logprobs, top-5 per step)."""
    out, logprobs, tops = [], [], []
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            lp = torch.log_softmax(model(torch.tensor([seq])).logits[0, -1].double(), -1)
            tok = int(lp.argmax())
            out.append(tok)
            logprobs.append(float(lp[tok]))
            vals, idx = lp.topk(5)
            tops.append(list(zip(idx.tolist(), vals.tolist(), strict=True)))
            seq.append(tok)
            if tok in stop:
                break
    return out, logprobs, tops


@pytest.fixture(scope="session")
def greedy(hf):
    """``greedy(ids, n, stop=set())`` -> HF's (tokens, logprobs, top-5), cached."""
    cache: dict = {}

    def run(ids, n, stop=frozenset()):
        key = (tuple(ids), n, frozenset(stop))
        if key not in cache:
            cache[key] = hf_greedy(hf[0], list(ids), n, set(stop))
        return cache[key]

    return run
