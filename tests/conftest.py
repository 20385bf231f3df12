"""Suite-wide pytest set-up: the markers, the automatic skip of ``gpu`` tests, and the
grouping of tests onto pytest-xdist workers.

``gpu``: needs a CUDA GPU; skipped when ``torch.cuda.is_available()`` is false.
``slow``: starts real servers or many processes (deselect with ``-m "not slow"``).

Threads: every worker, and every process a test starts (servers, spawned ranks), runs torch
with one thread (``OMP_NUM_THREADS=1`` unless the caller set it). Two workers on 2 cores,
each starting servers of 2-3 processes, would otherwise run 2 OpenMP threads per process and
lose the cores to oversubscription: a TP-2 server test took 63 s with sglang's default
threads and 49 s with one, alone on the idle 2-core machine.

Workers (``-n 2`` in pyproject.toml): a test file's tests run on one worker,
so a module fixture (a spawned run, an interpreter subprocess, patched trees) is built once;
every test under ``tests/e2e`` runs on one worker in collection order, because they share
the servers of ``tests/e2e/conftest.py``; the stand-in kernels' interpreter files run on one
worker, because they share one interpreter subprocess (``kernels/_standin_interpret.py``).
"""

from __future__ import annotations

import os
import sys

import pytest

E2E_SCOPE = "tests/e2e"
STANDIN_INTERPRET_SCOPE = "tests/kernels/stand-in interpreter files"
STANDIN_INTERPRET_FILES = frozenset(
    f"tests/kernels/test_{name}_interpret.py"
    for name in (
        "activation",
        "decode_attention",
        "decode_inputs",
        "norm",
        "qk_norm_rope",
        "rope",
        "topk",
    )  # fmt: skip
)
MARKERS = {
    "gpu": "needs a CUDA GPU (skipped without one)",
    "slow": "starts real servers or many processes",
}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # inherited by every process a test starts
    torch = sys.modules.get("torch")
    if torch is not None:  # imported before this hook read the variable; else torch reads it
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def scope_of(nodeid: str) -> str:
    """The scheduling scope of a test: its file, ``tests/e2e`` for every e2e test, and one
    scope for the stand-in interpreter files."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(E2E_SCOPE + "/"):
        return E2E_SCOPE
    if path in STANDIN_INTERPRET_FILES:
        return STANDIN_INTERPRET_SCOPE
    return path


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Load-scope scheduling with the scopes of ``scope_of``, in xdist's order (most tests
    first). Handing the longest scopes out first instead (c4fa7ed) ran the multi-process
    scopes side by side: a fresh-clone run took 12:48 against 10:23-11:27 before.
    (xdist's ``loadgroup`` would do the grouping with markers, but its node-id suffix does not
    take under pytest 9 here: tests of one group landed on both workers.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    return FileScopes(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if item.get_closest_marker("gpu") is not None]
    if not gpu_items:
        return
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in gpu_items:
        item.add_marker(skip)
