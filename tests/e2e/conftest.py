"""Shared real servers for the e2e tests: each layout starts once, for the tests that need it.

A test asks for a server through a fixture (``server_tp1``, ``server_tp2``); the first
such test starts it and it stays up while the next collected test needs it too, then
it is stopped (not at the end of the whole session, so the rest of the suite does not
run beside an idle server). Collection puts the tests of one server next to each other,
tests marked ``ends_server`` last among them: those may kill the server they get.

Both servers serve the embedded one-expert default model with ``--single-expert-mode tp``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import torch
from e2e_servers import Server, start_server

from sglang_ext.models.tiny import default_model_path

logger = logging.getLogger(__name__)

LAYOUTS = {
    "server_tp1": ["--tp-size", "1", "--single-expert-mode", "tp"],
    "server_tp2": ["--tp-size", "2", "--single-expert-mode", "tp"],
}


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
