"""Suite-wide pytest set-up: the markers, and the automatic skip of ``gpu`` tests.

``gpu``: needs a CUDA GPU; skipped when ``torch.cuda.is_available()`` is false.
``slow``: starts real servers or many processes (deselect with ``-m "not slow"``).
"""

from __future__ import annotations

import pytest

MARKERS = {
    "gpu": "needs a CUDA GPU (skipped without one)",
    "slow": "starts real servers or many processes",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")


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
