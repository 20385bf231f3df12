"""Model layers: the single-expert MoE layer that replaces sglang's FusedMoE for E=1."""

from sglang_ext.layers.routing import DP_ROUTINGS
from sglang_ext.layers.single_expert_moe import (
    SINGLE_EXPERT_MODE_ENV,
    SINGLE_EXPERT_MODES,
    SingleExpertMoE,
    resolve_single_expert_mode,
)

__all__ = [
    "DP_ROUTINGS",
    "SINGLE_EXPERT_MODE_ENV",
    "SINGLE_EXPERT_MODES",
    "SingleExpertMoE",
    "resolve_single_expert_mode",
]
