"""Plain-torch gated activations (the stand-in's torch path): ``act(x[..., :d]) * x[..., d:]``.

The activation runs on the float32 gate; the product is rounded once to ``out``'s dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["ACTIVATIONS", "gated_act_ref"]

ACTIVATIONS = ("silu", "gelu", "gelu_tanh")


def _act(name: str, a32: torch.Tensor) -> torch.Tensor:
    if name == "silu":
        return F.silu(a32)
    if name == "gelu":
        return F.gelu(a32)
    return F.gelu(a32, approximate="tanh")


def gated_act_ref(x: torch.Tensor, out: torch.Tensor, act: str) -> torch.Tensor:
    """Write ``act(x[..., :d]) * x[..., d:]`` into ``out`` ([..., d]) and return it."""
    d = x.shape[-1] // 2
    torch.mul(_act(act, x[..., :d].float()), x[..., d:], out=out)
    return out
