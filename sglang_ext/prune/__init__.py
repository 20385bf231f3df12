"""Prune a Qwen3-MoE checkpoint to one expert per MoE layer (``python -m sglang_ext.prune``).

``prune`` is imported lazily so that ``sglang_ext.prune.config`` (used by the presets) does not
pull in torch.
"""

from __future__ import annotations

from typing import Any

from .config import PruneConfig, moe_layout, single_expert_config

__all__ = ["PruneConfig", "moe_layout", "prune", "single_expert_config"]


def __getattr__(name: str) -> Any:
    if name == "prune":
        from .core import prune

        return prune
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
