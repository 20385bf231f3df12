"""Per-layer, per-op, communication and overlap analysis of a Kineto Chrome trace.

Reads the JSON that ``torch.profiler`` exports, so it works on any such trace.  Layer
and op ranges are the ``record_function`` labels that :mod:`profiler` puts around
modules (``layer::<name>``, ``op::<name>``): on GPU their ``gpu_user_annotation``
twins (GPU time), on CPU the ``user_annotation`` ranges (wall time).

Communication: ``record_param_comms`` events (NCCL: message elements and dtype) or else
each ``c10d::*`` op recorded with shapes give a count and bytes (the input message of each
call; a TensorList input records no dtype, so ``default_itemsize`` is used); its time is taken from the backend
events that do the work: NCCL kernels (``nccl*`` kernel names) on GPU, ``gloo:*`` ranges
(gloo's worker threads) on CPU.  Compute = the other GPU kernels (GPU) or the main
thread's top-level CPU ops (CPU).  Overlap and idle are interval unions and intersections
over the profiled window.  HolisticTraceAnalysis computes the same GPU-side breakdown but
needs GPU kernels (it has nothing to analyse in a CPU trace) and pulls in jupyterlab, so
this module does it directly from the events.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

__all__ = ["load_events", "comm_kind", "analyze_trace", "LAYER_PREFIX", "OP_PREFIX"]

LAYER_PREFIX = "layer::"
OP_PREFIX = "op::"
_ITEMSIZE = {
    "float": 4,
    "c10::Half": 2,
    "c10::BFloat16": 2,
    "double": 8,
    "int": 4,
    "long int": 8,
    "signed char": 1,
    "unsigned char": 1,
    "bool": 1,
    "short int": 2,
    "c10::Float8_e4m3fn": 1,
    "c10::Float8_e5m2": 1,
}


def load_events(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open() as f:
        data = json.load(f)
    return data["traceEvents"] if isinstance(data, dict) else data


def comm_kind(name: str) -> str | None:
    """Collective kind of an event name (c10d op, gloo range, NCCL kernel), or None."""
    low = re.sub(r"[^a-z]", "", name.lower())
    if not (name.startswith(("c10d::", "gloo:", "nccl")) or "nccl" in low):
        return None
    for key, kind in (
        ("allreduce", "all_reduce"),
        ("allgather", "all_gather"),
        ("reducescatter", "reduce_scatter"),
        ("broadcast", "broadcast"),
        ("alltoall", "all_to_all"),
        ("sendrecv", "sendrecv"),
        ("send", "send"),
        ("recv", "recv"),
        ("barrier", "barrier"),
    ):
        if key in low:
            return kind
    return "other_comm"


def _union(iv: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(iv):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _length(iv: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in iv)


def _intersection(x: list[tuple[float, float]], y: list[tuple[float, float]]) -> float:
    i = j = 0
    tot = 0.0
    while i < len(x) and j < len(y):
        lo, hi = max(x[i][0], y[j][0]), min(x[i][1], y[j][1])
        tot += max(0.0, hi - lo)
        if x[i][1] < y[j][1]:
            i += 1
        else:
            j += 1
    return tot


_PARAM_DTYPE = {
    "Float": 4,
    "BFloat16": 2,
    "Half": 2,
    "Double": 8,
    "Int": 4,
    "Long": 8,
    "Byte": 1,
    "Char": 1,
    "Bool": 1,
    "Float8_e4m3fn": 1,
    "Float8_e5m2": 1,
}


def _input_bytes(ev: dict[str, Any], default_itemsize: int) -> int:
    """Bytes of a c10d op's first tensor input (a TensorList records no dtype: default)."""
    args = ev.get("args", {})
    for d, t in zip(args.get("Input Dims") or [], args.get("Input type") or [], strict=False):
        if not isinstance(d, list) or not d:
            continue
        shape = d[0] if isinstance(d[0], list) else d
        n = 1
        for v in shape:
            n *= v
        return n * _ITEMSIZE.get(t, default_itemsize)
    return 0


def _param_comms_bytes(ev: dict[str, Any]) -> int:
    """Bytes of a ``record_param_comms`` event (NCCL path): input elements x dtype size."""
    args = ev.get("args", {})
    return int(args.get("In msg nelems", 0)) * _PARAM_DTYPE.get(str(args.get("dtype")), 4)


def _self_times(evs: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float, int]]:
    """(event, self time, nesting depth) for nested complete events of one thread."""
    out = []
    stack: list[list[Any]] = []  # [event, end, child_time, depth]
    for e in sorted(evs, key=lambda e: (e["ts"], -e["dur"])):
        while stack and e["ts"] >= stack[-1][1]:
            ev, _, child, depth = stack.pop()
            out.append((ev, ev["dur"] - child, depth))
        if stack:
            stack[-1][2] += e["dur"]
        stack.append([e, e["ts"] + e["dur"], 0.0, len(stack)])
    while stack:
        ev, _, child, depth = stack.pop()
        out.append((ev, ev["dur"] - child, depth))
    return out


def analyze_trace(
    path: str | Path, *, top_k: int = 10, default_itemsize: int = 4
) -> dict[str, Any]:
    """Layer/op times, op distribution, communication, compute-vs-comm and bottlenecks."""
    raw = load_events(path)
    events = [e for e in raw if e.get("ph") == "X" and "dur" in e]
    kernels = [e for e in events if e.get("cat") == "kernel"]
    gpu = bool(kernels)
    ann_cat = "gpu_user_annotation" if gpu else "user_annotation"
    layers: dict[str, list[float]] = defaultdict(list)
    ops: dict[str, list[float]] = defaultdict(list)
    for e in events:
        if e.get("cat") != ann_cat:
            continue
        if e["name"].startswith(LAYER_PREFIX):
            layers[e["name"][len(LAYER_PREFIX) :]].append(e["dur"])
        elif e["name"].startswith(OP_PREFIX):
            ops[e["name"][len(OP_PREFIX) :]].append(e["dur"])

    # communication: counts and bytes from c10d ops, time from the backend's own events
    comm: dict[str, dict[str, float]] = defaultdict(
        lambda: {"count": 0, "bytes": 0, "time_us": 0.0}
    )
    cpu_ops = [e for e in events if e.get("cat") == "cpu_op"]
    params = [
        e
        for e in cpu_ops
        if e["name"] == "record_param_comms"
        and comm_kind("c10d::" + str(e.get("args", {}).get("Collective name", "")))
    ]
    for e in params or cpu_ops:
        if params:  # NCCL records the message size and dtype explicitly
            k = comm_kind("c10d::" + str(e["args"]["Collective name"]))
            nbytes = _param_comms_bytes(e)
        elif e["name"].startswith("c10d::"):
            k, nbytes = comm_kind(e["name"]), _input_bytes(e, default_itemsize)
        else:
            continue
        if k and k != "barrier":
            comm[k]["count"] += 1
            comm[k]["bytes"] += nbytes
    if gpu:
        comm_ev = [e for e in kernels if comm_kind(e["name"])]
        compute_ev = [e for e in kernels if not comm_kind(e["name"])]
    else:
        comm_ev = [
            e for e in events if e.get("cat") == "user_annotation" and e["name"].startswith("gloo:")
        ]
        by_tid: dict[Any, float] = defaultdict(float)
        for e in cpu_ops:
            by_tid[e.get("tid")] += e["dur"]
        main_tid = max(by_tid, key=by_tid.get) if by_tid else None
        compute_ev = [
            e
            for e, _, d in _self_times([e for e in cpu_ops if e.get("tid") == main_tid])
            if d == 0 and not e["name"].startswith("c10d::")
        ]
    for e in comm_ev:
        k = comm_kind(e["name"])
        if k and k != "barrier":
            comm[k]["time_us"] += e["dur"]
    for v in comm.values():
        v["bw_gbps"] = v["bytes"] / (v["time_us"] * 1e3) if v["time_us"] > 0 else None

    comp_iv = _union([(e["ts"], e["ts"] + e["dur"]) for e in compute_ev])
    comm_iv = _union([(e["ts"], e["ts"] + e["dur"]) for e in comm_ev])
    all_iv = _union(comp_iv + comm_iv)
    span = (all_iv[-1][1] - all_iv[0][0]) if all_iv else 0.0
    comp_us, comm_us = _length(comp_iv), _length(comm_iv)
    overlap = _intersection(comp_iv, comm_iv)
    breakdown = {
        "compute_us": comp_us,
        "comm_us": comm_us,
        "overlap_us": overlap,
        "exposed_comm_us": comm_us - overlap,
        "idle_us": span - _length(all_iv),
        "span_us": span,
        "comm_overlap_fraction": overlap / comm_us if comm_us else 0.0,
    }

    # op time distribution: GPU kernels by name, or CPU ops by self time (main thread)
    dist_: dict[str, float] = defaultdict(float)
    if gpu:
        for e in kernels:
            dist_[e["name"]] += e["dur"]
    else:
        for e, self_t, _ in _self_times([e for e in cpu_ops]):
            dist_[e["name"]] += self_t
    total = sum(dist_.values()) or 1.0
    top = sorted(dist_.items(), key=lambda kv: -kv[1])[:top_k]
    mem = [e for e in raw if e.get("name") == "[memory]"]
    peak = max((e.get("args", {}).get("Total Allocated", 0) for e in mem), default=0)
    return {
        "device": "gpu" if gpu else "cpu",
        "layers": _summary(layers),
        "ops": _summary(ops),
        "op_time_us": dict(sorted(dist_.items(), key=lambda kv: -kv[1])),
        "comm": {k: dict(v) for k, v in comm.items()},
        "breakdown": breakdown,
        "bottlenecks": [{"name": k, "total_us": v, "share": v / total} for k, v in top],
        "peak_mem_allocated_mb": peak / 2**20,
    }


def _summary(d: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        k: {"count": len(v), "total_us": sum(v), "mean_us": sum(v) / len(v)}
        for k, v in sorted(d.items(), key=lambda kv: _natural(kv[0]))
    }


def _natural(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s)]
