"""Apply a grammar's token bitmask to logits with torch, on any device and dtype.

xgrammar's bitmask is int32 ``[batch, ceil(vocab / 32)]``; bit ``j % 32`` of word
``j // 32`` is 1 when token ``j`` is allowed. sglang 0.4.7's xgrammar backend has a
GPU kernel only (its CPU branch calls a method that does not exist), so the patched
backend calls this on CPU. Semantics follow ``xgrammar.apply_token_bitmask_inplace``:
only the first ``min(logits.shape[-1], 32 * bitmask.shape[-1])`` logits are masked.
"""

from __future__ import annotations

import torch

__all__ = ["apply_token_bitmask_"]


def apply_token_bitmask_(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """Set the disallowed logits of each row to -inf, in place."""
    if logits.dim() != bitmask.dim() or logits.dim() not in (1, 2):
        raise ValueError(
            f"logits {tuple(logits.shape)} and bitmask {tuple(bitmask.shape)} must both be "
            "1-D or both 2-D"
        )
    if bitmask.dtype != torch.int32:
        raise ValueError(f"bitmask must be int32, got {bitmask.dtype}")
    bitmask = bitmask.to(logits.device)
    vocab = min(logits.shape[-1], 32 * bitmask.shape[-1])
    shifts = torch.arange(32, dtype=torch.int32, device=logits.device)
    allowed = ((bitmask.unsqueeze(-1) >> shifts) & 1).bool().flatten(-2)[..., :vocab]
    logits[..., :vocab].masked_fill_(~allowed, float("-inf"))
