"""Suite-wide pytest set-up: the markers, the automatic skip of ``gpu`` tests, and the
grouping of tests onto pytest-xdist workers.

``gpu``: needs a CUDA GPU; skipped when ``torch.cuda.is_available()`` is false.
``slow``: starts real servers or many processes (deselect with ``-m "not slow"``).

Workers (``-n 2`` in pyproject.toml): a test file's tests run on one worker,
so a module fixture (a spawned run, an interpreter subprocess, patched trees) is built once;
every test under ``tests/e2e`` runs on one worker in collection order, because they share
the servers of ``tests/e2e/conftest.py``; the stand-in kernels' interpreter files run on one
worker, because they share one interpreter subprocess (``kernels/_standin_interpret.py``).
The longest scopes are handed out first (``LONG_SCOPES``), so that none starts last and
leaves the other worker idle at the end.
"""

from __future__ import annotations

import pytest

E2E_SCOPE = "tests/e2e"
STANDIN_INTERPRET_SCOPE = "tests/kernels/stand-in interpreter files"
STANDIN_INTERPRET_FILES = frozenset(
    f"tests/kernels/test_{name}_interpret.py"
    for name in ("activation", "norm", "qk_norm_rope", "rope", "topk")
)
# Scopes of about 20 s or more, roughly longest first: seconds of setup + call + teardown on
# the 2-core machine with -n 2 (saturated), in a suite run before and after they were handed
# out in this order.  They go out in this order, before every other scope; the rest follow
# xdist's order (most tests first).  A stale entry only costs balance, never a test.
LONG_SCOPES = (
    E2E_SCOPE,  # 443-454 s: the shared TP 1 and TP 2 servers and their tests
    "tests/engine/test_sp_pp.py",  # 145-171 s
    "tests/profile/test_profile_cpu.py",  # 78-89 s
    "tests/perf/serving/test_compare.py",  # 131 s, in 4 tests (one real TP 2 launch)
    "tests/perf/profile/test_profiler.py",  # 27-73 s
    "tests/kernels/test_fused_mlp_interpret.py",  # 37 s (82 s before the patch-once), one child
    STANDIN_INTERPRET_SCOPE,  # 26 s, one child (was one per worker: 37 + 20 s)
    "tests/distributed/test_spawn_deadline.py",  # 40-45 s
    "tests/patching/test_interrupt.py",  # 20-38 s
    "tests/patching/test_single_expert_sites.py",  # 37-38 s
    "tests/engine/test_launcher_cleanup.py",  # 36-38 s
    "tests/layers/test_single_expert_moe_parity.py",  # 26-35 s
)

MARKERS = {
    "gpu": "needs a CUDA GPU (skipped without one)",
    "slow": "starts real servers or many processes",
}


def pytest_configure(config: pytest.Config) -> None:
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


def scope_rank(scope: str) -> int:
    """Hand-out rank: the ``LONG_SCOPES`` in their order, then every other scope."""
    try:
        return LONG_SCOPES.index(scope)
    except ValueError:
        return len(LONG_SCOPES)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Load-scope scheduling with the scopes of ``scope_of``, longest first.
    (xdist's ``loadgroup`` would do the grouping with markers, but its node-id suffix does not
    take under pytest 9 here: tests of one group landed on both workers.)"""
    from collections import OrderedDict

    from xdist.scheduler import LoadScopeScheduling

    class FileScopes(LoadScopeScheduling):
        _ranked = False

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not self._ranked:  # the queue is complete by the first hand-out
                # a stable sort: scopes of one rank keep xdist's order
                ranked = sorted(self.workqueue.items(), key=lambda item: scope_rank(item[0]))
                self.workqueue = OrderedDict(ranked)
                self._ranked = True
            super()._assign_work_unit(node)

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
