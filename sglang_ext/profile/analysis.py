"""From one rank's Kineto trace (and every rank's collective log) to the profile's numbers.

Per rank, from the trace: the measured steps (``step::<phase>`` ranges), and inside them
the time of each decoder layer (``layer::L<i>``), each op (``op::L<i>.<op>``) and the
parts outside the layers (``op::embed``, ``op::final_norm``, ``op::logits``; the rest of
the step, batch preparation and sampling, is ``other``), all as means per step. On the
GPU these are the ``gpu_user_annotation`` ranges (GPU time), and inside each layer the
NCCL kernels are communication, the other kernels compute, and the gaps idle. On the CPU
they are the ``user_annotation`` (wall) ranges.

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

from sglang_ext.perf.trace_analysis import analyze_trace, comm_kind, load_events

__all__ = ["rank_summary", "merge_comm", "per_step_comm", "bottlenecks", "hta_summary"]

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


def rank_summary(trace: str | Path, *, n_layers: int, phase: str, gpu: bool) -> dict[str, Any]:
    """Per-step means of steps, layers, ops and outside parts in one rank's trace."""
    events = [e for e in load_events(trace) if e.get("ph") == "X" and "dur" in e]
    cat = "gpu_user_annotation" if gpu else "user_annotation"
    ann = [e for e in events if e.get("cat") == cat]
    steps_ev = sorted((e for e in ann if e["name"] == f"step::{phase}"), key=lambda e: e["ts"])
    if not steps_ev:
        raise RuntimeError(f"no step::{phase} range in {trace}: the profiler saw no step")
    steps = [(e["ts"], e["ts"] + e["dur"]) for e in steps_ev]
    n = len(steps)
    layer = [0.0] * n_layers
    ops: dict[str, list[float]] = defaultdict(lambda: [0.0] * n_layers)
    outside: dict[str, float] = defaultdict(float)
    layer_iv: list[tuple[int, float, float]] = []
    for e in ann:
        if _within(e, steps) is None:
            continue
        if m := _LAYER.match(e["name"]):
            i = int(m.group(1))
            layer[i] += e["dur"] / n
            layer_iv.append((i, e["ts"], e["ts"] + e["dur"]))
        elif m := _OP.match(e["name"]):
            ops[m.group(2)][int(m.group(1))] += e["dur"] / n
        elif m := _OUT.match(e["name"]):
            outside[m.group(1)] += e["dur"] / n
    step_us = sum(b - a for a, b in steps) / n
    outside["other"] = step_us - sum(layer) - sum(outside.values())
    out: dict[str, Any] = {
        "steps_us": [b - a for a, b in steps],
        "step_us": step_us,
        "per_layer_us": layer,
        "ops_us": dict(ops),
        "outside_us": dict(outside),
        "trace_analysis": analyze_trace(trace),
    }
    if gpu:
        out["per_layer_gpu"] = _gpu_layers(events, layer_iv, n_layers, n)
    return out


def _gpu_layers(
    events: list[dict[str, Any]], layer_iv: list[tuple[int, float, float]], n_layers: int, n: int
) -> dict[str, list[float]]:
    """Per layer (mean per step): NCCL kernel time, other kernel time, idle, on the GPU."""
    kernels = sorted(
        (
            (e["ts"], e["ts"] + e["dur"], bool(comm_kind(e["name"])))
            for e in events
            if e.get("cat") == "kernel"
        ),
    )
    res = {k: [0.0] * n_layers for k in ("compute_us", "comm_us", "idle_us")}
    for i, a, b in layer_iv:
        inside = [(max(s, a), min(t, b), c) for s, t, c in kernels if t > a and s < b]
        comm = [(s, t) for s, t, c in inside if c]
        comp = [(s, t) for s, t, c in inside if not c]
        busy = union_len(comm + comp)
        res["comm_us"][i] += union_len(comm) / n
        res["compute_us"][i] += (busy - union_len(comm)) / n
        res["idle_us"][i] += (b - a - busy) / n
    return res


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
        n_layers, n = len(rk["per_layer_us"]), len(rk["steps_us"])
        comm, idle = [0.0] * n_layers, [0.0] * n_layers
        for c in rk["calls"]:
            if c["step"] is not None and c["layer"] is not None:
                comm[c["layer"]] += c.get("transfer_us", c["dur_us"]) / n
                idle[c["layer"]] += c.get("wait_us", 0.0) / n
        if "per_layer_gpu" in rk:
            continue
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
