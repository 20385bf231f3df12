"""Record every collective sglang issues, at run time.

:func:`record_collectives` wraps the ``GroupCoordinator``'s collective methods (class
attributes, so every group of every kind is covered) and the ``torch.distributed``
collectives sglang also calls directly on a coordinator's process group (the scheduler's
DP-attention all_gather of the ranks' token counts, on the TP group's CPU group), and
restores them on exit. Each outermost call on a group of more than one rank becomes a
:class:`CommCall` (kind, bytes, wall time, group, the layer and block it ran in, the step
it belongs to) and a ``comm::<kind>`` range in the trace; a call that makes another wrapped
one (``all_gather`` -> ``all_gather_into_tensor``, ``inplace_all_reduce`` ->
``_all_reduce_in_place``, a coordinator method -> ``torch.distributed.all_reduce``) counts
once. A direct ``torch.distributed`` call's group is named after its coordinator
(``tp:cpu`` for the TP coordinator's CPU group, ``tp`` for its device group; ``world``
for the default group).

Bytes are each call's input message, as nccl-tests' ``size`` counts it for all_reduce:
the tensor reduced (all_reduce), this rank's contribution (all_gather, gather,
broadcast), or the whole input list (reduce_scatter). Wall time on the CPU (gloo) is the
collective's time including any wait for a slower peer; on CUDA a call only enqueues, so
the GPU time comes from the trace's NCCL kernels instead.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.profiler import record_function

from .labels import ModelLabeler

__all__ = ["CommCall", "CommLog", "record_collectives", "WRAPPED", "WRAPPED_TORCH"]

# GroupCoordinator method -> kind (the input tensor: :func:`_tensor_arg`)
WRAPPED = {
    "all_reduce": "all_reduce",
    "_all_reduce_in_place": "all_reduce",
    "_all_reduce_out_place": "all_reduce",
    "all_gather": "all_gather",
    "all_gather_into_tensor": "all_gather",
    "_all_gather_into_tensor": "all_gather",
    "reduce_scatter": "reduce_scatter",
    "gather": "gather",
    "broadcast": "broadcast",
    "send": "send",
    "recv": "recv",
}
# torch.distributed function -> (kind, name of its input tensor parameter)
WRAPPED_TORCH = {
    "all_reduce": ("all_reduce", "tensor"),
    "all_gather_into_tensor": ("all_gather", "input_tensor"),
    "all_gather": ("all_gather", "tensor"),
    "reduce_scatter_tensor": ("reduce_scatter", "input"),
    "broadcast": ("broadcast", "tensor"),
}


@dataclass(kw_only=True, slots=True)
class CommCall:
    """One collective call on one rank."""

    kind: str
    """all_reduce, all_gather, reduce_scatter, gather, broadcast, send or recv."""
    nbytes: int
    """Input message bytes (see the module doc)."""
    dur_us: float
    """Wall time of the call on this rank."""
    group: str
    """The coordinator's unique name (tp, attn_tp, moe_ep, ...)."""
    group_size: int
    """Ranks in that group."""
    layer: int | None
    """Decoder layer it ran in, None outside the layers."""
    block: str | None
    """attn or moe inside a layer, else None."""
    step: int | None
    """Index of the measured step it belongs to (None outside them)."""
    dtype: str
    """Input dtype."""
    shape: list[int]
    """Input shape."""


class CommLog:
    """The calls recorded so far; ``step`` is set by the runner around each measured step."""

    def __init__(self, where: ModelLabeler | None = None) -> None:
        self.calls: list[CommCall] = []
        self.where = where
        self.step: int | None = None


def _tensor_arg(name: str, args: tuple, kwargs: dict) -> Any:
    if name in ("all_gather_into_tensor", "_all_gather_into_tensor"):
        return args[1] if len(args) > 1 else kwargs.get("input")
    if name == "reduce_scatter":
        return list(args[1] if len(args) > 1 else kwargs.get("input_list"))
    if name == "send":
        return args[0] if args else kwargs.get("tensor")
    if name == "recv":
        return None
    return args[0] if args else kwargs.get("input_")


def _nbytes(t: Any) -> tuple[int, str, list[int]]:
    if isinstance(t, torch.Tensor):
        return t.numel() * t.element_size(), str(t.dtype), list(t.shape)
    if isinstance(t, list) and t and isinstance(t[0], torch.Tensor):
        return sum(x.numel() * x.element_size() for x in t), str(t[0].dtype), list(t[0].shape)
    return 0, "", []


def _torch_args(name: str, fn: Any, args: tuple, kwargs: dict) -> tuple[Any, Any]:
    """(input tensor, process group or None) of a torch.distributed call."""
    bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
    return bound.get(WRAPPED_TORCH[name][1]), bound.get("group")


def _group_name(group: Any) -> str:
    """The coordinator a raw process group belongs to: ``name`` (device group) or
    ``name:cpu`` (CPU group); ``world`` for the default group."""
    from sglang.srt.distributed import parallel_state

    if group is None:
        return "world"
    for name, ref in list(parallel_state._groups.items()):
        gc = ref()
        if gc is None:
            continue
        if group is getattr(gc, "cpu_group", None):
            return f"{name}:cpu"
        if group is getattr(gc, "device_group", None):
            return name
    return f"pg{id(group)}"


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


@contextlib.contextmanager
def record_collectives(log: CommLog) -> Iterator[CommLog]:
    """Wrap GroupCoordinator's collectives for the duration; restore the originals after."""
    from sglang.srt.distributed.parallel_state import GroupCoordinator

    local = threading.local()

    def call(kind: str, group: str, size: int, tensor: Any, fn: Any, args, kwargs) -> Any:
        """Run ``fn``; record it unless it is nested in a recorded call (or trivial)."""
        depth = getattr(local, "depth", 0)
        if depth or size == 1 or _capturing():
            local.depth = depth + 1
            try:
                return fn(*args, **kwargs)
            finally:
                local.depth = depth
        nbytes, dtype, shape = _nbytes(tensor)
        where = log.where
        local.depth = 1
        t0 = time.perf_counter()
        try:
            with record_function(f"comm::{kind}"):
                return fn(*args, **kwargs)
        finally:
            dur = (time.perf_counter() - t0) * 1e6
            local.depth = 0
            log.calls.append(
                CommCall(
                    kind=kind,
                    nbytes=nbytes,
                    dur_us=dur,
                    group=group,
                    group_size=size,
                    layer=where.layer if where else None,
                    block=where.block if where else None,
                    step=log.step,
                    dtype=dtype,
                    shape=shape,
                )
            )

    def wrap(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            group = str(getattr(self, "unique_name", "?"))
            tensor = _tensor_arg(name, args, kwargs)
            return call(WRAPPED[name], group, int(self.world_size), tensor, fn,
                        (self, *args), kwargs)  # fmt: skip

        return wrapper

    def wrap_torch(name: str, fn: Any) -> Any:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if getattr(local, "depth", 0):  # inside a coordinator method: counted there
                return fn(*args, **kwargs)
            tensor, pg = _torch_args(name, fn, args, kwargs)
            size = dist.get_world_size(pg) if dist.is_initialized() else 1
            return call(WRAPPED_TORCH[name][0], _group_name(pg), size, tensor, fn, args, kwargs)

        return wrapper

    originals = {name: GroupCoordinator.__dict__[name] for name in WRAPPED
                 if name in GroupCoordinator.__dict__}  # fmt: skip
    torch_originals = {name: getattr(dist, name) for name in WRAPPED_TORCH}
    for name, fn in originals.items():
        setattr(GroupCoordinator, name, wrap(name, fn))
    for name, fn in torch_originals.items():
        setattr(dist, name, wrap_torch(name, fn))
    try:
        yield log
    finally:
        for name, fn in originals.items():
            setattr(GroupCoordinator, name, fn)
        for name, fn in torch_originals.items():
            setattr(dist, name, fn)
