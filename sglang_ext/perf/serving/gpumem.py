"""GPU memory of this host: NVML (all processes, e.g. a local server) or torch."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["gpu_memory"]

logger = logging.getLogger(__name__)


def gpu_memory() -> list[dict[str, Any]]:
    """One ``{index, name, used_gb, total_gb}`` per visible GPU; ``[]`` without GPUs."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no driver, no library: fall back to torch
        return _torch_memory()
    try:
        out = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            name = pynvml.nvmlDeviceGetName(h)
            out.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "used_gb": mem.used / 1e9,
                    "total_gb": mem.total / 1e9,
                }
            )
        return out
    finally:
        pynvml.nvmlShutdown()


def _torch_memory() -> list[dict[str, Any]]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(
            {
                "index": i,
                "name": torch.cuda.get_device_name(i),
                "used_gb": (total - free) / 1e9,
                "total_gb": total / 1e9,
            }
        )
    return out
