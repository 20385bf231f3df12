"""Record every collective sglang issues through its ``GroupCoordinator``, at run time.

:func:`record_collectives` wraps the coordinator's collective methods (class attributes,
so every group of every kind is covered) and restores them on exit. Each outermost call on
a group of more than one rank becomes a :class:`CommCall` (kind, bytes, wall time, group,
the layer and block it ran in, the step it belongs to) and a ``comm::<kind>`` range in the
trace; a method that calls another wrapped one (``all_gather`` ->
``all_gather_into_tensor``, ``inplace_all_reduce`` -> ``_all_reduce_in_place``) counts once.

Bytes are each call's input message, as nccl-tests' ``size`` counts it for all_reduce:
the tensor reduced (all_reduce), this rank's contribution (all_gather, gather,
broadcast), or the whole input list (reduce_scatter). Wall time on the CPU (gloo) is the
collective's time including any wait for a slower peer; on CUDA a call only enqueues, so
the GPU time comes from the trace's NCCL kernels instead.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.profiler import record_function

from .labels import ModelLabeler

__all__ = ["CommCall", "CommLog", "record_collectives", "WRAPPED"]

# method -> (kind, how to get the input bytes from (args, kwargs))
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


def _capturing() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_current_stream_capturing()


@contextlib.contextmanager
def record_collectives(log: CommLog) -> Iterator[CommLog]:
    """Wrap GroupCoordinator's collectives for the duration; restore the originals after."""
    from sglang.srt.distributed.parallel_state import GroupCoordinator

    local = threading.local()
    originals: dict[str, Any] = {}

    def wrap(name: str, fn: Any) -> Any:
        kind = WRAPPED[name]

        @functools.wraps(fn)
        def wrapper(self, *args, **kwargs):
            depth = getattr(local, "depth", 0)
            if depth or self.world_size == 1 or _capturing():
                local.depth = depth + 1
                try:
                    return fn(self, *args, **kwargs)
                finally:
                    local.depth = depth
            nbytes, dtype, shape = _nbytes(_tensor_arg(name, args, kwargs))
            where = log.where
            local.depth = 1
            t0 = time.perf_counter()
            try:
                with record_function(f"comm::{kind}"):
                    return fn(self, *args, **kwargs)
            finally:
                dur = (time.perf_counter() - t0) * 1e6
                local.depth = 0
                log.calls.append(
                    CommCall(
                        kind=kind,
                        nbytes=nbytes,
                        dur_us=dur,
                        group=str(getattr(self, "unique_name", "?")),
                        group_size=int(self.world_size),
                        layer=where.layer if where else None,
                        block=where.block if where else None,
                        step=log.step,
                        dtype=dtype,
                        shape=shape,
                    )
                )

        return wrapper

    for name in WRAPPED:
        fn = GroupCoordinator.__dict__.get(name)
        if fn is not None:
            originals[name] = fn
            setattr(GroupCoordinator, name, wrap(name, fn))
    try:
        yield log
    finally:
        for name, fn in originals.items():
            setattr(GroupCoordinator, name, fn)
