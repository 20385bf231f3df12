"""The MoE expert-parallel layout rule, in one place.

sglang 0.4.7 places the ranks of one TP group on consecutive global ranks. sglang-ext's MoE
expert-parallel group (patch 0007) splits each TP group into ``tp / ep`` groups of ``ep``
consecutive ranks, so ``ep`` must divide ``tp`` (``ep`` defaults to ``tp``; with ``ep == tp``
the EP group is the TP group itself).

``SingleExpertMoE`` in ``dp`` mode replicates the one expert over the EP group and lets the
block's existing TP all-reduce sum the ranks' outputs, so there the EP group must be the
whole TP group: ``ep == tp``. The launcher (``serving/args.py``), the rank-side adapter
(``serving/qwen3_moe.py``) and ``initialize_model_parallel`` (patch 0007) all call
:func:`moe_ep_size`.
"""

from __future__ import annotations

__all__ = ["moe_ep_group_ranks", "moe_ep_size"]


def moe_ep_size(*, tp_size: int, ep_size: int | None, single_expert_dp: bool = False) -> int:
    """The MoE expert-parallel size for ``--tp-size tp_size --ep-size ep_size``.

    ``ep_size`` None means ``tp_size``. ValueError naming the flags when ``ep_size``
    does not divide ``tp_size``, or, with ``single_expert_dp``, is not ``tp_size``.
    """
    if tp_size < 1:
        raise ValueError(f"--tp-size must be >= 1, got {tp_size}")
    ep = tp_size if ep_size is None else ep_size
    if single_expert_dp and ep != tp_size:
        raise ValueError(
            f"--single-expert-mode dp replicates the expert over the MoE expert-parallel "
            f"group, which must span the TP group: --ep-size must equal --tp-size "
            f"(got --ep-size {ep}, --tp-size {tp_size})"
        )
    if ep < 1 or tp_size % ep != 0:
        raise ValueError(
            f"--ep-size {ep} must divide --tp-size {tp_size}: the MoE expert-parallel "
            f"groups split each TP group into groups of ep consecutive ranks; use a divisor "
            f"of {tp_size}"
        )
    return ep


def moe_ep_group_ranks(*, world_size: int, tp_size: int, ep_size: int) -> list[list[int]]:
    """The global ranks of every MoE expert-parallel group: consecutive runs of ``ep_size``
    ranks (each inside one TP group of ``tp_size`` consecutive ranks)."""
    ep = moe_ep_size(tp_size=tp_size, ep_size=ep_size)
    if world_size < 1 or world_size % tp_size != 0:
        raise ValueError(
            f"world size {world_size} is not a multiple of --tp-size {tp_size}: "
            f"world = tp x pp must hold"
        )
    return [list(range(start, start + ep)) for start in range(0, world_size, ep)]
