"""Which tensors the one-expert checkpoint holds, and how each is made from the source.

Every output tensor is an ``OutTensor``: a copy of one source tensor, one row of one (the router
of the kept expert), or the element-wise mean of several (``--expert mean``). Its expected shape
and dtype come from the source's metadata, so the writer can check what it produced against
them.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

import torch

from .checkpoint import SourceCheckpoint
from .config import MoELayout

__all__ = ["OutTensor", "build_plan", "check_experts"]

_EXPERT_RE = re.compile(r"^model\.layers\.(\d+)\.mlp\.experts\.(\d+)\.(.+)$")
_GATE_RE = re.compile(r"^model\.layers\.(\d+)\.mlp\.gate\.weight$")
_MEAN_SUFFIXES = frozenset({"gate_proj.weight", "up_proj.weight", "down_proj.weight"})


@dataclass(frozen=True, slots=True)
class OutTensor:
    name: str
    """Name in the output checkpoint."""
    op: str
    """``copy`` (sources[0] as is), ``row`` (row ``row`` of sources[0]), ``mean`` (of all
    sources) or ``mean_rows`` (mean over dim 0 of sources[0], keeping the dim)."""
    sources: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: torch.dtype
    row: int | None = None

    @property
    def nbytes(self) -> int:
        numel = 1
        for d in self.shape:
            numel *= d
        return numel * torch.empty((), dtype=self.dtype).element_size()


def _expert_tensors(src: SourceCheckpoint) -> dict[int, dict[int, dict[str, str]]]:
    """layer -> expert -> suffix -> source name."""
    found: dict[int, dict[int, dict[str, str]]] = defaultdict(lambda: defaultdict(dict))
    for name in src.weight_map:
        m = _EXPERT_RE.match(name)
        if m:
            found[int(m.group(1))][int(m.group(2))][m.group(3)] = name
    return found


def check_experts(src: SourceCheckpoint, layout: MoELayout, *, mean: bool) -> None:
    """Raise ValueError naming the first way the checkpoint's tensors contradict its config."""
    experts = _expert_tensors(src)
    stray = sorted(set(experts) - set(layout.moe_layers))
    if stray:
        raise ValueError(
            f"layers {stray} hold expert tensors but are dense per config.json "
            "(mlp_only_layers / decoder_sparse_step): the checkpoint and its config disagree"
        )
    for layer in layout.moe_layers:
        gate = f"model.layers.{layer}.mlp.gate.weight"
        if gate not in src.weight_map:
            raise ValueError(f"MoE layer {layer} has no router tensor {gate!r}")
        if len(src.shape(gate)) != 2 or src.shape(gate)[0] != layout.num_experts:
            raise ValueError(
                f"{gate} has shape {list(src.shape(gate))}, expected "
                f"[num_experts={layout.num_experts}, hidden_size]"
            )
        got = experts.get(layer, {})
        if sorted(got) != list(range(layout.num_experts)):
            raise ValueError(
                f"MoE layer {layer} has experts {sorted(got)}, expected 0..{layout.num_experts - 1}"
            )
        suffixes = set(got[0])
        if not _MEAN_SUFFIXES <= suffixes:
            raise ValueError(f"expert 0 of layer {layer} lacks {sorted(_MEAN_SUFFIXES - suffixes)}")
        for e, tensors in got.items():
            if set(tensors) != suffixes:
                raise ValueError(
                    f"expert {e} of layer {layer} has tensors {sorted(tensors)}, "
                    f"expert 0 has {sorted(suffixes)}"
                )
            for sfx, name in tensors.items():
                ref = got[0][sfx]
                if src.shape(name) != src.shape(ref) or src.dtype(name) != src.dtype(ref):
                    raise ValueError(f"{name} differs in shape/dtype from {ref}")
        if mean:
            if suffixes != _MEAN_SUFFIXES:
                raise ValueError(
                    f"--expert mean averages plain weights only, but layer {layer}'s experts "
                    f"also hold {sorted(suffixes - _MEAN_SUFFIXES)} (a quantized checkpoint?): "
                    "pick an expert index instead"
                )
            if not src.dtype(got[0]["gate_proj.weight"]).is_floating_point:
                raise ValueError("--expert mean needs floating-point expert weights")


def build_plan(
    src: SourceCheckpoint, layout: MoELayout, choice: dict[int, int | None]
) -> list[OutTensor]:
    """The output tensors in source order (shard, then name).

    ``choice[layer]`` is the kept expert of each MoE layer, or None to average all of them.
    """
    assert set(choice) == set(layout.moe_layers), "internal: a choice per MoE layer"
    order = sorted(src.weight_map, key=lambda n: (src.weight_map[n], n))
    plan: list[OutTensor] = []
    for name in order:
        shape, dtype = src.shape(name), src.dtype(name)
        if m := _EXPERT_RE.match(name):
            layer, expert, suffix = int(m.group(1)), int(m.group(2)), m.group(3)
            kept = choice[layer]
            out_name = f"model.layers.{layer}.mlp.experts.0.{suffix}"
            if kept is None and expert == 0:
                sources = tuple(
                    f"model.layers.{layer}.mlp.experts.{e}.{suffix}"
                    for e in range(layout.num_experts)
                )
                plan.append(
                    OutTensor(name=out_name, op="mean", sources=sources, shape=shape, dtype=dtype)
                )
            elif kept == expert:
                plan.append(
                    OutTensor(name=out_name, op="copy", sources=(name,), shape=shape, dtype=dtype)
                )
        elif (m := _GATE_RE.match(name)) and int(m.group(1)) in choice:
            kept = choice[int(m.group(1))]
            out_shape = (1, *shape[1:])
            if kept is None:  # the router row is irrelevant with one expert; keep the mean row
                plan.append(
                    OutTensor(
                        name=name, op="mean_rows", sources=(name,), shape=out_shape, dtype=dtype
                    )
                )
            else:
                plan.append(
                    OutTensor(
                        name=name, op="row", sources=(name,), shape=out_shape, dtype=dtype, row=kept
                    )
                )
        else:
            plan.append(OutTensor(name=name, op="copy", sources=(name,), shape=shape, dtype=dtype))
    return plan
