"""Suite-wide pytest set-up: the markers, the automatic skip of ``gpu`` tests, and the
grouping of tests onto pytest-xdist workers.

``gpu``: needs a CUDA GPU; skipped when ``torch.cuda.is_available()`` is false.
``slow``: starts real servers or many processes (deselect with ``-m "not slow"``).

Workers (``-n 2`` in pyproject.toml): a test file's tests run on one worker,
so a module fixture (a spawned run, an interpreter subprocess, patched trees) is built once;
every test under ``tests/e2e`` runs on one worker in collection order, because they share
the servers of ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import pytest

E2E_SCOPE = "tests/e2e"

MARKERS = {
    "gpu": "needs a CUDA GPU (skipped without one)",
    "slow": "starts real servers or many processes",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Load-scope scheduling where a scope is a test file, and all of ``tests/e2e`` is one.
    (xdist's ``loadgroup`` would do it with markers, but its node-id suffix does not take
    under pytest 9 here: tests of one group landed on both workers.)"""
    from xdist.scheduler import LoadScopeScheduling

    class FileScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return E2E_SCOPE if path.startswith(E2E_SCOPE + "/") else path

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
