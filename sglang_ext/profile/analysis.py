"""From one rank's Kineto trace (and every rank's collective log) to the profile's numbers.

Per rank, from the trace: the measured steps (``step::<phase>`` ranges), and inside them
the time of each decoder layer (``layer::L<i>``), each op (``op::L<i>.<op>``) and the
parts outside the layers (the model's ``op::embed``, ``op::final_norm``, ``op::logits``;
the step's ``op::batch_prep``, ``op::dp_prepare``, ``op::sample``; the rest of the step,
unlabelled, is ``other``), all as means per step; a label nested in another counts once,
in the outer one. On the
CPU these are the ``user_annotation`` (wall) ranges. On the GPU the kernels run after the
CPU call that launched them, outside its range: each kernel is counted in the ranges that
enclose its launching call (:func:`gpu_attribution`, by the Kineto correlation id), and
inside each layer the NCCL kernels are communication, the other kernels compute, and the
gaps idle. A step replayed from a CUDA graph has no per-layer numbers (None, with the
reason).

Across ranks (CPU, gloo: a collective blocks until every rank arrived), the j-th call of a
group takes on rank r ``d[r][j]``; ``min_r d[r][j]`` is the transfer itself and the rest is
rank r waiting for a slower peer: that is the layer's idle time. So per layer and rank,
compute + comm + idle = the layer's time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from sglang_ext.perf.profile.trace_analysis import analyze_trace, comm_kind, load_events

from .kineto import gpu_ops

__all__ = [
    "rank_summary",
    "gpu_attribution",
    "merge_comm",
    "per_step_comm",
    "bottlenecks",
    "hta_summary",
]

_LAYER = re.compile(r"^layer::L(\d+)$")
_OP = re.compile(r"^op::L(\d+)\.(\w+)$")
_OUT = re.compile(r"^op::(\w+)$")


def _within(e: dict[str, Any], steps: list[tuple[float, float]]) -> int | None:
    mid = e["ts"] + e["dur"] / 2
    for i, (a, b) in enumerate(steps):
        if a <= mid <= b:
            return i
    return None


def union_len(iv: list[tuple[float, float]]) -> float:
    """Total length covered by the intervals (overlaps counted once)."""
    tot, end = 0.0, float("-inf")
    for a, b in sorted(iv):
        if b <= end:
            continue
        tot += b - max(a, end)
        end = b
    return tot


def _cpu_parts(
    ann: list[dict[str, Any]], steps: list[tuple[float, float]], n_layers: int
) -> tuple[list[float], dict[str, list[float]], dict[str, float]]:
    """Wall time per step (mean) of the layers, ops and outside parts of CPU ranges.

    Nested labels count once: a layer inside a layer, an op inside an op, or an outside
    part inside a layer or another op range adds nothing (its time is already counted in
    the enclosing range), so the parts never sum to more than the step.
    """
    n = len(steps)
    layer = [0.0] * n_layers
    ops: dict[str, list[float]] = defaultdict(lambda: [0.0] * n_layers)
    outside: dict[str, float] = defaultdict(float)
    by_thread: dict[Any, list[tuple[float, float, str, Any]]] = defaultdict(list)
    for e in ann:
        if _within(e, steps) is None:
            continue
        if m := _LAYER.match(e["name"]):
            kind, key = "layer", int(m.group(1))
        elif m := _OP.match(e["name"]):
            kind, key = "op", (m.group(2), int(m.group(1)))
        elif m := _OUT.match(e["name"]):
            kind, key = "outside", m.group(1)
        else:
            continue
        by_thread[(e.get("pid"), e.get("tid"))].append((e["ts"], e["ts"] + e["dur"], kind, key))
    for rs in by_thread.values():
        stack: list[tuple[float, float, str, Any]] = []
        for r in sorted(rs, key=lambda r: (r[0], -r[1])):
            a, b, kind, key = r
            stack = [s for s in stack if s[0] <= a and b <= s[1]]  # those enclosing r
            kinds = {s[2] for s in stack}
            dur = (b - a) / n
            if kind == "layer" and "layer" not in kinds:
                layer[key] += dur
            elif kind == "op" and "op" not in kinds and "outside" not in kinds:
                ops[key[0]][key[1]] += dur
            elif kind == "outside" and not kinds:
                outside[key] += dur
            stack.append(r)
    return layer, dict(ops), dict(outside)


def rank_summary(trace: str | Path, *, n_layers: int, phase: str, gpu: bool) -> dict[str, Any]:
    """Per-step means of steps, layers, ops and outside parts in one rank's trace."""
    events = [e for e in load_events(trace) if e.get("ph") == "X" and "dur" in e]
    ann = [e for e in events if e.get("cat") == "user_annotation"]
    steps_ev = sorted((e for e in ann if e["name"] == f"step::{phase}"), key=lambda e: e["ts"])
    if not steps_ev:
        raise RuntimeError(f"no step::{phase} range in {trace}: the profiler saw no step")
    steps = [(e["ts"], e["ts"] + e["dur"]) for e in steps_ev]
    n = len(steps)
    step_us = sum(b - a for a, b in steps) / n
    layer, ops, outside = _cpu_parts(ann, steps, n_layers)
    out: dict[str, Any] = {"steps_us": [b - a for a, b in steps], "step_us": step_us}
    if gpu:
        out.update(gpu_attribution(events, steps, n_layers=n_layers, phase=phase))
        out["per_layer_host_us"] = layer  # the CPU's wall time in each layer (launching)
    else:
        outside["other"] = step_us - sum(layer) - sum(outside.values())
        out.update({"per_layer_us": layer, "ops_us": ops, "outside_us": outside})
    out["trace_analysis"] = analyze_trace(trace)
    return out


def _span(iv: list[tuple[float, float]]) -> float:
    return max(b for _, b in iv) - min(a for a, _ in iv) if iv else 0.0


def gpu_attribution(
    events: list[dict[str, Any]], steps: list[tuple[float, float]], *, n_layers: int, phase: str
) -> dict[str, Any]:
    """GPU time per layer, op and outside part, each kernel counted where it was launched.

    A kernel (or GPU memcpy/memset) belongs to the step, layer and op whose CPU ranges
    enclose the runtime call that launched it (:func:`kineto.gpu_ops`). Per step, then the
    mean over the steps:

    - ``per_layer_us``: the layer's GPU span, its first kernel's start to its last one's end;
      ``per_layer_gpu``: that span split into NCCL kernel time (comm), other kernel time
      (compute) and the gaps (idle: the GPU waiting, mostly for the CPU to launch);
    - ``ops_us``: an op's kernel time (union of its kernels' intervals);
    - ``outside_us``: the GPU span of embed, final_norm and logits; ``other``: the rest of
      the step (batch preparation, sampling, launch gaps between the parts).

    If the steps' kernels were replayed from a CUDA graph, they were launched by one
    ``cudaGraphLaunch`` outside every layer's range: nothing can be attributed, and the
    per-layer numbers are None with ``per_layer_reason`` saying why.
    """
    step_name = f"step::{phase}"
    index = {s: i for i, s in enumerate(steps)}
    ops, orphans = gpu_ops(events)
    in_step = []
    for g in ops:
        s = next((r for r in g.enclosing if r.name == step_name), None)
        if s is not None and (s.ts, s.end) in index:
            in_step.append((index[(s.ts, s.end)], g))
    n = len(steps)
    graph = sum(g.graph for _, g in in_step)
    per_step: list[list[tuple[float, float]]] = [[] for _ in steps]
    for i, g in in_step:
        per_step[i].append((g.ts, g.end))
    out: dict[str, Any] = {
        "gpu_kernels_per_step": len(in_step) / n,
        "gpu_graph_kernels_per_step": graph / n,
        "gpu_unattributed_kernels": orphans,
        "gpu_busy_us": sum(union_len(iv) for iv in per_step) / n,
    }
    if not in_step or graph:
        why = (
            f"the profiled steps replayed a CUDA graph: cudaGraphLaunch launched {graph / n:.0f} "
            f"of {len(in_step) / n:.0f} GPU kernels per step, outside every layer's CPU range, "
            f"so no kernel can be attributed to a layer or op; profile eagerly for per-layer "
            f"numbers (leave out --profile-graph, or pass sglang's --disable-cuda-graph)"
            if graph
            else f"no GPU kernel was launched inside a {step_name} range: nothing to attribute"
        )
        return {**out, "per_layer_us": None, "per_layer_gpu": None, "per_layer_reason": why,
                "ops_us": {}, "outside_us": {}}  # fmt: skip
    layer_k: dict[tuple[int, int], list[tuple[float, float, bool]]] = defaultdict(list)
    op_k: dict[tuple[int, str, int], list[tuple[float, float]]] = defaultdict(list)
    out_k: dict[tuple[int, str], list[tuple[float, float]]] = defaultdict(list)
    for i, g in in_step:
        lay = op = part = None
        for r in g.enclosing:
            if m := _LAYER.match(r.name):
                lay = int(m.group(1))
            elif m := _OP.match(r.name):
                op = (m.group(2), int(m.group(1)))
            elif m := _OUT.match(r.name):
                part = m.group(1)
        if lay is not None:
            layer_k[(i, lay)].append((g.ts, g.end, bool(comm_kind(g.name))))
            if op is not None:
                op_k[(i, *op)].append((g.ts, g.end))
        elif part is not None:
            out_k[(i, part)].append((g.ts, g.end))
    layer = [0.0] * n_layers
    split = {k: [0.0] * n_layers for k in ("compute_us", "comm_us", "idle_us")}
    for (_, li), ks in layer_k.items():
        iv = [(a, b) for a, b, _ in ks]
        comm = union_len([(a, b) for a, b, c in ks if c])
        busy = union_len(iv)
        layer[li] += _span(iv) / n
        split["comm_us"][li] += comm / n
        split["compute_us"][li] += (busy - comm) / n
        split["idle_us"][li] += (_span(iv) - busy) / n
    ops_us: dict[str, list[float]] = defaultdict(lambda: [0.0] * n_layers)
    for (_, name, li), iv in op_k.items():
        ops_us[name][li] += union_len(iv) / n
    outside: dict[str, float] = defaultdict(float)
    for (_, part), iv in out_k.items():
        outside[part] += _span(iv) / n
    step_us = sum(b - a for a, b in steps) / n
    outside["other"] = step_us - sum(layer) - sum(outside.values())
    return {**out, "per_layer_us": layer, "per_layer_gpu": split, "ops_us": dict(ops_us),
            "outside_us": dict(outside)}  # fmt: skip


def merge_comm(ranks: list[dict[str, Any]]) -> None:
    """Split each rank's collective wall time into transfer (the min over the ranks of the
    same call) and wait; add per-layer compute/comm/idle (CPU) to every rank's summary."""
    by_group: dict[str, list[list[dict[str, Any]]]] = defaultdict(lambda: [[] for _ in ranks])
    for r, rk in enumerate(ranks):
        for c in rk["calls"]:
            if c["step"] is not None:
                by_group[c["group"]][r].append(c)
    for seqs in by_group.values():
        members = [s for s in seqs if s]
        lengths = {len(s) for s in members}
        if len(lengths) != 1:
            raise RuntimeError(f"ranks issued different numbers of collectives: {sorted(lengths)}")
        for j in range(lengths.pop()):
            fastest = min(s[j]["dur_us"] for s in members)
            for s in members:
                s[j]["transfer_us"] = fastest
                s[j]["wait_us"] = s[j]["dur_us"] - fastest
    for rk in ranks:
        if rk["per_layer_us"] is None or "per_layer_gpu" in rk:
            continue  # GPU: the kernels give the split; graph replay: nothing per layer
        n_layers, n = len(rk["per_layer_us"]), len(rk["steps_us"])
        comm, idle = [0.0] * n_layers, [0.0] * n_layers
        for c in rk["calls"]:
            if c["step"] is not None and c["layer"] is not None:
                comm[c["layer"]] += c.get("transfer_us", c["dur_us"]) / n
                idle[c["layer"]] += c.get("wait_us", 0.0) / n
        rk["per_layer_cpu"] = {
            "compute_us": [
                t - c - w for t, c, w in zip(rk["per_layer_us"], comm, idle, strict=True)
            ],
            "comm_us": comm,
            "idle_us": idle,
        }


def per_step_comm(calls: list[dict[str, Any]], n_steps: int) -> dict[str, dict[str, Any]]:
    """count, bytes, time_us per step and algbw (bytes / time) of each collective kind."""
    out: dict[str, dict[str, Any]] = {}
    for c in calls:
        if c["step"] is None:
            continue
        d = out.setdefault(c["kind"], {"count": 0, "bytes": 0, "time_us": 0.0})
        d["count"] += 1
        d["bytes"] += c["nbytes"]
        d["time_us"] += c["dur_us"]
    for d in out.values():
        d["algbw_gbps"] = d["bytes"] / (d["time_us"] * 1e3) if d["time_us"] else None
        d["count"] //= n_steps
        d["bytes"] //= n_steps
        d["time_us"] /= n_steps
    return out


def where_label(c: dict[str, Any]) -> str:
    """Name of a collective by where it ran (token exchange = the MoE block's collective)."""
    if c["layer"] is None:
        return f"{c['kind']}(outside layers)"
    if c["block"] == "moe":
        return f"moe.token_exchange.{c['kind']}"
    return f"attn.{c['kind']}"


def bottlenecks(rk: dict[str, Any], top: int = 10) -> list[dict[str, Any]]:
    """The largest per-step costs of a rank: ops summed over layers, comm, outside parts."""
    items: dict[str, float] = defaultdict(float)
    for op, per_layer in rk["ops_us"].items():
        items[op] += sum(per_layer)
    n = len(rk["steps_us"])
    for c in rk["calls"]:
        if c["step"] is not None:
            items[where_label(c)] += c["dur_us"] / n
    for k, v in rk["outside_us"].items():
        items[k] += v
    step = rk["step_us"] or 1.0
    ranked = sorted(items.items(), key=lambda kv: -kv[1])[:top]
    return [{"name": k, "us": v, "share_of_step": v / step} for k, v in ranked]


def hta_summary(trace_dir: str | Path) -> dict[str, Any] | None:
    """HolisticTraceAnalysis' temporal breakdown and comm/compute overlap of GPU traces, if
    the optional ``HolisticTraceAnalysis`` package is installed (it is heavy: imported only
    here, never needed on the CPU path); None without it or when it cannot read the traces."""
    import logging

    try:
        from hta.trace_analysis import TraceAnalysis
    except ImportError:
        return None
    try:
        ta = TraceAnalysis(trace_dir=str(trace_dir))
        return {
            "temporal_breakdown": ta.get_temporal_breakdown(visualize=False).to_dict("records"),
            "comm_comp_overlap": ta.get_comm_comp_overlap(visualize=False).to_dict("records"),
        }
    except Exception as e:  # HTA's own parsing errors: the rest of the record stands
        logging.getLogger(__name__).warning(
            "HolisticTraceAnalysis could not read %s: %s", trace_dir, e
        )
        return None
