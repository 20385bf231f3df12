"""GPU work in a Kineto Chrome trace, each item tied to the CPU ranges that launched it.

On CUDA a kernel runs later than the CPU call that enqueued it, so its time does not fall
inside the CPU ``record_function`` ranges (``step::``, ``layer::``, ``op::``) around that
call. Kineto ties the two by a correlation id: the runtime/driver call (``cudaLaunchKernel``,
``cuLaunchKernel``, ``cudaMemcpyAsync``, ``cudaGraphLaunch``, ...) and the GPU activity it
enqueued (``kernel``, ``gpu_memcpy``, ``gpu_memset``) carry the same ``args.correlation``.
:func:`gpu_ops` follows that id to the launching call and lists the ``user_annotation``
ranges that enclose the call on its own thread: those are the ranges the GPU work belongs
to. A CUDA graph replay is one ``cudaGraphLaunch`` for all of its kernels, launched outside
any layer's range (the layers' Python code does not run): such items are flagged ``graph``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

__all__ = ["GPU_CATS", "LAUNCH_CATS", "Range", "GpuOp", "cpu_ranges", "gpu_ops"]

GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")
LAUNCH_CATS = ("cuda_runtime", "cuda_driver")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Range:
    """One CPU ``user_annotation`` range."""

    name: str
    """The ``record_function`` label."""
    ts: float
    """Start, us."""
    end: float
    """End, us."""


@dataclass(frozen=True, slots=True)
class GpuOp:
    """One GPU activity and where on the CPU it was launched."""

    name: str
    """Kernel (or memcpy/memset) name."""
    cat: str
    """kernel, gpu_memcpy or gpu_memset."""
    ts: float
    """GPU start, us."""
    end: float
    """GPU end, us."""
    launch: str
    """Name of the launching runtime/driver call."""
    launch_ts: float
    """When that call started on the CPU, us."""
    graph: bool
    """Launched by a CUDA graph replay (``cudaGraphLaunch``)."""
    enclosing: tuple[Range, ...]
    """The CPU ranges around the launching call on its thread, outermost first."""


def _thread(e: dict[str, Any]) -> tuple[Any, Any]:
    return e.get("pid"), e.get("tid")


def cpu_ranges(events: list[dict[str, Any]]) -> list[Range]:
    """All ``user_annotation`` ranges, by start."""
    return sorted(
        (
            Range(e["name"], e["ts"], e["ts"] + e["dur"])
            for e in events
            if e.get("ph") == "X" and e.get("cat") == "user_annotation" and "dur" in e
        ),
        key=lambda r: (r.ts, -r.end),
    )


def _enclosing(
    ranges: list[Range], points: list[tuple[float, int]]
) -> dict[int, tuple[Range, ...]]:
    """For each (t, key) point: the ranges holding t, outermost first (one sweep)."""
    out: dict[int, tuple[Range, ...]] = {}
    stack: list[Range] = []
    i = 0
    for t, key in sorted(points):
        while i < len(ranges) and ranges[i].ts <= t:
            r = ranges[i]
            while stack and stack[-1].end < r.ts:
                stack.pop()
            stack.append(r)
            i += 1
        while stack and stack[-1].end < t:
            stack.pop()
        out[key] = tuple(r for r in stack if r.end >= t)
    return out


def gpu_ops(events: list[dict[str, Any]]) -> tuple[list[GpuOp], int]:
    """(GPU activities tied to their launching call, count of those with no launch event)."""
    xs = [e for e in events if e.get("ph") == "X" and "dur" in e]
    launches: dict[Any, dict[str, Any]] = {}
    for e in xs:
        if e.get("cat") in LAUNCH_CATS and "correlation" in e.get("args", {}):
            launches[e["args"]["correlation"]] = e
    by_thread: dict[tuple[Any, Any], list[Range]] = defaultdict(list)
    for e in xs:
        if e.get("cat") == "user_annotation":
            by_thread[_thread(e)].append(Range(e["name"], e["ts"], e["ts"] + e["dur"]))
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    orphans = 0
    for e in xs:
        if e.get("cat") not in GPU_CATS:
            continue
        ln = launches.get(e.get("args", {}).get("correlation"))
        if ln is None:
            orphans += 1
        else:
            found.append((e, ln))
    points: dict[tuple[Any, Any], list[tuple[float, int]]] = defaultdict(list)
    for j, (_, ln) in enumerate(found):
        points[_thread(ln)].append((ln["ts"], j))
    if points and by_thread and not set(points) & set(by_thread):
        # no launching thread holds any range: a trace whose CPU ops and runtime calls are
        # keyed by different thread ids; place the calls on the ranges of every thread
        logger.warning("no runtime call shares a thread id with a CPU range: threads merged")
        merged = [r for rs in by_thread.values() for r in rs]
        by_thread = {(None, None): merged}
        points = {(None, None): [p for ps in points.values() for p in ps]}
    where: dict[int, tuple[Range, ...]] = {}
    for th, pts in points.items():
        rs = sorted(by_thread.get(th, []), key=lambda r: (r.ts, -r.end))
        where.update(_enclosing(rs, pts))
    out = [
        GpuOp(
            name=e["name"],
            cat=e["cat"],
            ts=e["ts"],
            end=e["ts"] + e["dur"],
            launch=ln["name"],
            launch_ts=ln["ts"],
            graph="GraphLaunch" in ln["name"],
            enclosing=where[j],
        )
        for j, (e, ln) in enumerate(found)
    ]
    out.sort(key=lambda g: g.ts)
    return out, orphans
