"""Where a decode step's host time goes: wall time inside named sglang calls, unprofiled.

``decode_budget`` splits a step into the graph's GPU time and the rest (``host_ms_per_step``);
this says what the rest is made of.  :func:`timed_calls` wraps each target (a function or
method looked up where its caller looks it up) in a ``time.perf_counter_ns`` pair, with no
synchronize and no profiler, for the ``with`` block only; the originals are put back on exit,
also when the block raises.  Times are inclusive (a call nested in another counts in both)
and are host times: on CUDA a kernel launch costs its launch, not its run, so the calls
before ``CUDAGraph.replay`` are the time the GPU waits at the head of a step.

:data:`DECODE_HOST_CALLS` names the calls of one decode step of ``profile.rank.decode``
through the patched sglang 0.4.7 (patches 0021/0025 included), the labels' dots giving
the nesting inside ``decode``, the whole step but its two synchronizes; with
``within="decode"`` the prefill before the steps makes the same calls uncounted.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

__all__ = ["CallTime", "DECODE_HOST_CALLS", "resolve", "timed_calls"]

_SB = "sglang.srt.managers.schedule_batch"
_CGR = "sglang.srt.model_executor.cuda_graph_runner"
_MR = "sglang.srt.model_executor.model_runner"

# (label, "module:attribute path"): a decode step's calls, outermost first
DECODE_HOST_CALLS: tuple[tuple[str, str], ...] = (
    ("decode", "sglang_ext.profile.rank:decode"),  # the whole step but its synchronizes
    ("prepare_for_decode", f"{_SB}:ScheduleBatch.prepare_for_decode"),
    ("prepare_for_decode.advance_decode_batch", f"{_SB}:advance_decode_batch"),
    ("prepare_for_decode.alloc_token_slots", f"{_SB}:ScheduleBatch.alloc_token_slots"),
    ("get_model_worker_batch", f"{_SB}:ScheduleBatch.get_model_worker_batch"),
    ("ForwardBatch.init_new", "sglang.srt.model_executor.forward_batch_info:ForwardBatch.init_new"),
    ("forward", f"{_MR}:ModelRunner.forward"),
    ("forward.can_run", f"{_CGR}:CudaGraphRunner.can_run"),
    ("forward.replay", f"{_CGR}:CudaGraphRunner.replay"),
    ("forward.replay.replay_prepare", f"{_CGR}:CudaGraphRunner.replay_prepare"),
    ("forward.replay.replay_prepare.copy_graph_inputs", f"{_CGR}:copy_graph_inputs"),
    ("forward.replay.CUDAGraph.replay", "torch.cuda:CUDAGraph.replay"),
    ("sample", f"{_MR}:ModelRunner.sample"),
    ("sample._preprocess_logits", f"{_MR}:ModelRunner._preprocess_logits"),
    ("sample.Sampler.forward", "sglang.srt.layers.sampler:Sampler.forward"),
)


@dataclass(slots=True)
class CallTime:
    """Calls made and their summed wall time."""

    calls: int = 0
    ns: int = 0


def resolve(target: str) -> tuple[object, str, object]:
    """(owner, attribute name, the raw attribute) of ``"module:Owner.attr"`` or
    ``"module:func"``; ValueError naming what is missing."""
    mod_name, sep, path = target.partition(":")
    if not sep or not path:
        raise ValueError(f"target {target!r}: expected 'module:attribute' (e.g. 'json:dumps')")
    owner: object = importlib.import_module(mod_name)
    *outer, name = path.split(".")
    for part in outer:
        if not hasattr(owner, part):
            raise ValueError(f"target {target!r}: {owner!r} has no attribute {part!r}")
        owner = getattr(owner, part)
    raw = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
    if raw is None:
        where = "its class body (inherited attributes are not wrapped)" if outer else "it"
        raise ValueError(f"target {target!r}: no {name!r} in {where}")
    return owner, name, raw


def _timed(fn, slot: CallTime, gate: list[int] | None, is_gate: bool):
    """``fn`` timed into ``slot``; with a ``gate`` (the open calls of the ``within`` target,
    a one-item list) a call outside every open gate call runs untimed."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if gate is not None and not is_gate and not gate[0]:
            return fn(*args, **kwargs)
        if is_gate:
            gate[0] += 1
        t0 = time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            slot.ns += time.perf_counter_ns() - t0
            slot.calls += 1
            if is_gate:
                gate[0] -= 1

    return wrapper


@contextlib.contextmanager
def timed_calls(
    targets: Sequence[tuple[str, str]], *, within: str | None = None
) -> Iterator[dict[str, CallTime]]:
    """Time every ``(label, target)`` call inside the block; yields ``{label: CallTime}``,
    filled as the block runs.  ``within``: the label of one target; the others then count
    only the calls made inside one of its calls (a decode step's, not the prefill's before
    it).  All targets resolve before any is wrapped (a bad one wraps nothing); every
    wrapped attribute is restored on exit."""
    labels = [label for label, _ in targets]
    if len(set(labels)) != len(labels):
        raise ValueError(f"duplicate labels in {labels}")
    if within is not None and within not in labels:
        raise ValueError(f"within={within!r} is none of the labels {labels}")
    gate = [0] if within is not None else None
    resolved = [(label, *resolve(t)) for label, t in targets]
    out = {label: CallTime() for label in labels}
    done: list[tuple[object, str, object]] = []
    try:
        for label, owner, name, raw in resolved:
            args = (out[label], gate, label == within)
            if isinstance(raw, classmethod | staticmethod):
                wrapped = type(raw)(_timed(raw.__func__, *args))
            else:
                wrapped = _timed(raw, *args)
            setattr(owner, name, wrapped)
            done.append((owner, name, raw))
        yield out
    finally:
        for owner, name, raw in reversed(done):
            setattr(owner, name, raw)
