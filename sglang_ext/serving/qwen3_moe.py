"""The experts of sglang's ``Qwen3MoeSparseMoeBlock`` for a model with one expert.

Patch 0010 calls :func:`make_experts` once per MoE layer. For a one-expert model it returns
``SingleExpertMoE``: the routing weight of a single expert is exactly 1, so the block is the
expert's SwiGLU MLP. In ``tp`` mode the expert is sharded over the TP group; in ``dp`` mode it
is replicated over the MoE expert-parallel group (which must be the TP group) and the tokens
are split between its ranks. Either way the block's TP all-reduce sums the ranks' outputs.
For any other model it returns None and sglang builds FusedMoE/EPMoE as before.

The mode, dp routing and kernel switch come from :func:`sglang_ext.serving.config.rank_config`;
the groups and server flags from sglang (:func:`make_experts` is the only function here that
reads sglang state; :func:`build_single_expert_moe` takes everything as arguments).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from torch import nn

from sglang_ext.serving.config import SingleExpertConfig, rank_config
from sglang_ext.serving.layout import moe_ep_size

__all__ = ["build_single_expert_moe", "check_server_args", "make_experts", "one_expert_gate"]

logger = logging.getLogger(__name__)


class Group(Protocol):
    """What we use of sglang's ``GroupCoordinator``."""

    rank_in_group: int
    world_size: int
    device_group: Any


def check_server_args(server_args: Mapping[str, Any]) -> None:
    """Refuse the sglang flags that have no meaning for one expert (sglang's
    ``global_server_args_dict``)."""
    if server_args.get("enable_deepep_moe"):
        raise ValueError(
            "DeepEP cannot split one expert over ranks: drop --enable-deepep-moe and "
            "use --single-expert-mode dp (expert replicated, tokens split)"
        )
    if server_args.get("ep_num_redundant_experts"):
        raise ValueError(
            "--ep-num-redundant-experts has no meaning for a one-expert model: "
            "--single-expert-mode dp already replicates the expert on every rank"
        )


def build_single_expert_moe(
    *,
    hidden_size: int,
    intermediate_size: int,
    layer_id: int,
    config: SingleExpertConfig,
    tp_group: Group,
    ep_group: Group | None,
) -> nn.Module:
    """``SingleExpertMoE`` over ``tp_group`` ('tp') or ``ep_group`` ('dp'), seeded by layer."""
    from sglang_ext.layers.single_expert_moe import SingleExpertMoE

    mode = config.mode or "tp"
    if mode == "dp":
        if ep_group is None:
            raise ValueError("--single-expert-mode dp needs the MoE expert-parallel group")
        moe_ep_size(tp_size=tp_group.world_size, ep_size=ep_group.world_size, single_expert_dp=True)
        group = ep_group
    else:
        group = tp_group
    if layer_id == 0:
        logger.info(
            "sglang-ext SingleExpertMoE: mode %s, rank %d of %d",
            mode,
            group.rank_in_group,
            group.world_size,
        )
    return SingleExpertMoE(
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        mode=mode,
        rank=group.rank_in_group,
        world_size=group.world_size,
        group=group.device_group,
        dp_routing=config.dp_routing,
        seed=layer_id,
    )


def make_experts(model_config: Any, layer_id: int) -> nn.Module | None:
    """The experts module of layer ``layer_id`` of a Qwen3-MoE ``model_config``:
    ``SingleExpertMoE`` for one expert, None (sglang's FusedMoE/EPMoE) otherwise."""
    if model_config.num_experts != 1:
        return None
    from sglang.srt.distributed import parallel_state
    from sglang.srt.managers.schedule_batch import global_server_args_dict

    check_server_args(global_server_args_dict)
    config = rank_config()
    return build_single_expert_moe(
        hidden_size=model_config.hidden_size,
        intermediate_size=model_config.moe_intermediate_size,
        layer_id=layer_id,
        config=config,
        tp_group=parallel_state.get_tp_group(),
        ep_group=parallel_state.get_moe_ep_group() if config.mode == "dp" else None,
    )


class OneExpertGate(nn.Module):
    """The router of a one-expert block. Softmax over one logit is exactly 1, so the routing
    weight needs no logits: ``forward`` computes nothing and returns ``(None, None)`` (what
    ``SingleExpertMoE`` accepts as ``router_logits``). It keeps the original gate's weight
    Parameter, with its ``weight_loader``, so the checkpoint's ``mlp.gate.weight`` loads (and
    is checked for shape) exactly as before."""

    def __init__(self, gate: nn.Module) -> None:
        super().__init__()
        self.weight = gate.weight

    def forward(self, hidden_states: Any) -> tuple[None, None]:
        return None, None


def one_expert_gate(gate: nn.Module) -> nn.Module:
    """Patch 0010 swaps a one-expert block's gate for this (see :class:`OneExpertGate`)."""
    if gate.weight.shape[0] != 1:
        raise ValueError(
            f"one_expert_gate: the gate has {gate.weight.shape[0]} outputs, expected 1 "
            "(only a one-expert block's router can be skipped)"
        )
    return OneExpertGate(gate)
