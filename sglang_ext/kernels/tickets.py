"""Zeroed int32 counters that a one-launch kernel's programs take tickets from.

A kernel whose last program to finish a piece of work merges its parts (``decode_attention``'s
splits, ``gemv``'s K splits) counts arrivals with ``atomic_add`` on a counter per piece, and
the last arrival resets it to 0.  So the counters must be zero before the first launch and
stay allocated between launches (a CUDA graph replays the same addresses): one buffer per
(kernel family, device), grown only outside CUDA-graph capture.  Kernels of one family
launched on one stream run one after the other, so they can share it.
"""

from __future__ import annotations

import torch
import triton

__all__ = ["counters"]

_BUFFERS: dict[tuple[str, torch.device], torch.Tensor] = {}


def counters(device: torch.device, n: int, owner: str) -> torch.Tensor | None:
    """At least ``n`` zeroed int32 counters of ``owner``'s kernels on ``device``, kept
    between launches (each launch leaves them 0).  None when more are needed while a CUDA
    graph is being captured, where no new buffer can be zeroed outside the graph."""
    key = (owner, device)
    t = _BUFFERS.get(key)
    if t is None or t.numel() < n:
        if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            return None
        t = _BUFFERS[key] = torch.zeros(max(4096, triton.next_power_of_2(n)),
                                        dtype=torch.int32, device=device)  # fmt: skip
    return t
