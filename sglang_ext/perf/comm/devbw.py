"""Memory bandwidth of one device, host<->device copies and GPU-to-GPU copies.

``device_copy``: ``dst.copy_(src)`` of S bytes reads S and writes S, so
``bw_gbps = 2 S / t`` (the STREAM "copy" convention).  ``h2d``/``d2h`` (pinned host
memory) and ``peer_copy`` (``cuda:i -> cuda:j``) move S bytes: ``bw_gbps = S / t``.
Works on CPU too (``device_copy`` then measures host memory), which is what the tests use.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from sglang_ext.perf.timing import median, time_iters

__all__ = ["device_copy_bw", "host_device_bw", "peer_copy_bw", "peer_access_matrix"]

logger = logging.getLogger(__name__)


def _row(kind: str, nbytes: int, moved: int, times: list[float], **extra: Any) -> dict[str, Any]:
    t = median(times)
    return {
        "kind": kind,
        "size_bytes": nbytes,
        "bytes_moved": moved,
        "time_us": t * 1e6,
        "min_time_us": min(times) * 1e6,
        "bw_gbps": moved / t / 1e9,
        **extra,
    }


def device_copy_bw(
    nbytes: int, device: torch.device, *, warmup: int = 3, iters: int = 10
) -> dict[str, Any]:
    n = max(nbytes // 4, 1)
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    times = time_iters(lambda: dst.copy_(src), device=device, warmup=warmup, iters=iters)
    if not torch.equal(dst, src):
        raise RuntimeError(f"copy on {device} produced wrong data")
    return _row("device_copy", n * 4, 2 * n * 4, times, device=str(device))


def host_device_bw(
    nbytes: int, device: torch.device, direction: str, *, warmup: int = 3, iters: int = 10
) -> dict[str, Any]:
    if device.type != "cuda":
        raise ValueError(f"host<->device copies need a CUDA device, got {device}")
    n = max(nbytes // 4, 1)
    host = torch.ones(n, dtype=torch.float32).pin_memory()
    dev = torch.empty(n, dtype=torch.float32, device=device)
    src, dst = (host, dev) if direction == "h2d" else (dev, host)
    times = time_iters(
        lambda: dst.copy_(src, non_blocking=True), device=device, warmup=warmup, iters=iters
    )
    return _row(direction, n * 4, n * 4, times, device=str(device))


def peer_copy_bw(
    nbytes: int, src: torch.device, dst: torch.device, *, warmup: int = 3, iters: int = 10
) -> dict[str, Any]:
    n = max(nbytes // 4, 1)
    a = torch.ones(n, dtype=torch.float32, device=src)
    b = torch.empty(n, dtype=torch.float32, device=dst)
    with torch.cuda.device(src):
        times = time_iters(
            lambda: b.copy_(a, non_blocking=True), device=src, warmup=warmup, iters=iters
        )
    torch.cuda.synchronize(dst)
    peer = torch.cuda.can_device_access_peer(src.index, dst.index)
    return _row("peer_copy", n * 4, n * 4, times, src=str(src), dst=str(dst), peer_access=peer)


def peer_access_matrix() -> list[list[bool]]:
    """``m[i][j]``: can cuda:i access cuda:j's memory directly (P2P)?"""
    if not torch.cuda.is_available():
        return []
    k = torch.cuda.device_count()
    return [[i == j or torch.cuda.can_device_access_peer(i, j) for j in range(k)] for i in range(k)]
