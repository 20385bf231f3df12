"""Prune a Qwen3-MoE checkpoint to one expert per MoE layer (``python -m sglang_ext.prune``)."""

from .config import PruneConfig, moe_layout, single_expert_config
from .prune import prune

__all__ = ["PruneConfig", "moe_layout", "prune", "single_expert_config"]
