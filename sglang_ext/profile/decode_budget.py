"""The decode-step budget on the GPU: kernels, busy time and the weight+KV read floor.

For each batch size a rank runs sglang's own ModelRunner like ``bench_one_batch`` (CUDA
graphs on, as served): a timed prefill, timed decode steps (one synchronize per step), then
a few more decode steps under torch.profiler, each inside a ``step::decode`` range. From the
trace (:func:`decode_kernel_stats`):

- a kernel belongs to the step whose CPU range holds the runtime call that launched it
  (``cudaLaunchKernel``, ``cudaGraphLaunch``, ...: matched by the ``correlation`` id, see
  :mod:`kineto`), so kernels replayed from a CUDA graph count too;
- ``gpu_busy_frac``: the union of the step's kernel intervals over its span, from the start
  of the step's CPU range to the later of its end and its last kernel's end.

Where the step's time goes (``graph_replay_ms``, when the batch replays a CUDA graph): the
rank also replays the batch's captured decode graph back to back, each replay between two
CUDA events (:func:`sglang_ext.perf.timing.time_iters`), so the host is ahead of the GPU and
the replay's GPU time is what is left: the model's kernels and the gaps between them inside
the graph. Then

- ``host_ms_per_step`` = ``decode_step_ms`` - ``graph_replay_ms``: the step's time outside
  the graph (sglang's batch preparation, ``replay_prepare``, sampling, the token copy back);
- ``graph_busy_frac`` = the step's kernel busy time (from the trace) over ``graph_replay_ms``
  (what the gaps between the graph's kernels leave; the sampling kernels count here too).
- ``host_calls_us``: what the host time is made of, from one more run of the same steps
  (no profiler) with :mod:`host_calls`' wrappers: microseconds per step inside each sglang
  call of :data:`host_calls.DECODE_HOST_CALLS`, inclusive, and that run's median step
  ``host_calls_step_ms`` (the wrappers' own cost shows as its excess over
  ``decode_step_ms``).

The floor (:func:`floor_ms`) is the bytes a decode step must read, the weights (all but
the embedding table, of which only the batch's rows are read) plus the KV cache of every
sequence's context, over the device copy bandwidth measured in the same run
(``dst.copy_(src)``, read + write bytes over time, as ``perf.comm.devbw`` counts it).
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from typing import Any

from .analysis import union_len
from .kineto import cpu_ranges, gpu_ops

__all__ = [
    "decode_kernel_stats",
    "kv_bytes_per_step",
    "floor_ms",
    "budget_metrics",
    "gpu_folder",
]


def decode_kernel_stats(
    events: list[dict[str, Any]], step_name: str = "step::decode", top: int = 12
) -> dict[str, Any]:
    """Per decode step: kernels, busy and span (us); their means; the ``top`` kernel names by
    GPU time per step (decode steps only: the prefill before them is not counted); from
    Chrome trace events."""
    steps = sorted((r.ts, r.end) for r in cpu_ranges(events) if r.name == step_name)
    if not steps:
        raise ValueError(f"no {step_name!r} CPU range in the trace: nothing to count")
    index = {s: i for i, s in enumerate(steps)}
    per: list[list[tuple[float, float]]] = [[] for _ in steps]
    by_name: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for g in gpu_ops(events)[0]:
        if g.cat != "kernel":
            continue
        for r in g.enclosing:
            if r.name == step_name:
                per[index[(r.ts, r.end)]].append((g.ts, g.end))
                by_name[g.name][0] += 1
                by_name[g.name][1] += g.end - g.ts
                break
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]
    n = len(steps)
    top_per_step = [
        {"name": k[:120], "per_step": c / n, "us_per_step": t / n} for k, (c, t) in ranked
    ]
    rows = []
    for (a, b), ks in zip(steps, per, strict=True):
        end = max([b] + [k[1] for k in ks])
        rows.append({"kernels": len(ks), "busy_us": union_len(ks), "span_us": end - a})
    span = sum(r["span_us"] for r in rows)
    return {
        "steps": rows,
        "kernels_per_step": statistics.mean(r["kernels"] for r in rows),
        "gpu_busy_frac": sum(r["busy_us"] for r in rows) / span if span else 0.0,
        "step_span_ms": span / len(rows) / 1e3,
        "busy_ms_per_step": statistics.mean(r["busy_us"] for r in rows) / 1e3,
        "top_kernels": top_per_step,
    }


def kv_bytes_per_step(
    *, batch: int, context_len: float, layers: int, kv_heads: int, head_dim: int, dtype_size: int
) -> float:
    """Bytes of K and V a decode step reads: every layer, every sequence's whole context."""
    return 2.0 * layers * kv_heads * head_dim * dtype_size * batch * context_len


def floor_ms(weight_bytes: float, kv_bytes: float, copy_bw_gbps: float) -> float:
    """(weights + KV) bytes over the copy bandwidth, in ms."""
    if copy_bw_gbps <= 0:
        raise ValueError(f"copy bandwidth must be > 0 GB/s, got {copy_bw_gbps}")
    return (weight_bytes + kv_bytes) / (copy_bw_gbps * 1e9) * 1e3


def budget_metrics(
    *,
    decode_s: list[float],
    prefill_s: float,
    stats: dict[str, Any],
    layers: int,
    weight_bytes: float,
    kv_bytes: float,
    copy_bw_gbps: float,
    graph_replay_s: list[float] | None = None,
) -> dict[str, Any]:
    """The decode_budget record's metrics from the measured times and the trace stats;
    ``graph_replay_s``: back-to-back replays of the batch's decode graph (None: no graph)."""
    step_ms = statistics.median(decode_s) * 1e3
    floor = floor_ms(weight_bytes, kv_bytes, copy_bw_gbps)
    split: dict[str, Any] = {
        "graph_replay_ms": None,
        "host_ms_per_step": None,
        "graph_busy_frac": None,
    }
    if graph_replay_s:
        replay_ms = statistics.median(graph_replay_s) * 1e3
        split = {
            "graph_replay_ms": replay_ms,
            "host_ms_per_step": step_ms - replay_ms,
            "graph_busy_frac": stats["busy_ms_per_step"] / replay_ms,
        }
    return {
        "decode_step_ms": step_ms,
        "prefill_ms": prefill_s * 1e3,
        "kernels_per_step": stats["kernels_per_step"],
        "kernels_per_layer_step": stats["kernels_per_step"] / layers,
        "gpu_busy_frac": stats["gpu_busy_frac"],
        "profiled_step_span_ms": stats["step_span_ms"],
        "weight_bytes": weight_bytes,
        "kv_bytes_per_step": kv_bytes,
        "copy_bw_gbps": copy_bw_gbps,
        "floor_ms": floor,
        "ratio_to_floor": step_ms / floor,
        **split,
    }


def gpu_folder(device_name: str) -> str:
    """``bench/results/<gpu>`` folder name: 'NVIDIA H200' -> 'h200'; CPU -> 'cpu'."""
    low = device_name.lower()
    m = re.search(r"\b([a-z]{1,2}\d{2,4}[a-z]?)\b", low.replace("nvidia", ""))
    return m.group(1) if m else re.sub(r"[^a-z0-9]+", "_", low).strip("_") or "unknown"
