"""Analytic model of SP+PP prefill (compute, pipeline bubble, activation and KV-sync traffic),
and the summary of measured per-rank records that the model is compared with.

Model, for a prompt of P tokens in K = ceil(P / chunk) chunks over N stages:

* compute of chunk k on one stage: ``t_k = T1 / N * cost_k / sum(cost)`` (T1: one rank, whole
  model), with ``cost`` of ``pipeline.chunk_cost``: equal chunks cost the same only when the
  attention-to-linear ratio ``attn_ratio`` is 0 (then ``t_k = T1 / (K * N)``);
* the pipeline is a flow shop (``pipeline.pipeline_makespan``): with equal chunks, ``K + N - 1``
  steps of ``t_c`` (see ``pipeline.schedule``), plus ``N - 1`` activation hops
  ``alpha + chunk * D * bytes / bw`` on the critical path;
* bubble fraction of a stage: idle over makespan, ``(N - 1) / (K + N - 1)`` for equal chunks;
* ``stage_chunk_s`` (measured compute of every chunk on every stage, e.g. from a run's rank
  records) replaces the split of ``T1``: the same flow shop, hops and bubble on those times, so
  the schedule, bubble and comm terms can be checked against the run that gave them;
* KV sync: each rank receives ``(N - 1) / N`` of the KV (``P * L * 2 * Hkv * d * bytes``) in
  ``N - 1`` steps, ``(N - 1) * alpha + (N - 1) / N * kv / bw`` for both strategies (a ring
  all_gather moves the same volume); it cannot finish before the last stage's KV is final,
  so the model counts it as exposed (hidden = 0) -- an upper bound the measurement beats when
  earlier stages' KV moves while the last stage still computes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sglang_ext.engine.pipeline import (
    chunk_cost,
    flow_shop_makespan,
    split_chunks,
    split_chunks_balanced,
)

__all__ = [
    "PrefillModelInputs",
    "attn_ratio_from_flops",
    "fit_attn_ratio",
    "predict_prefill",
    "summarize_ranks",
]


def attn_ratio_from_flops(
    *, hidden_size: int, num_heads: int, num_kv_heads: int, head_dim: int, mlp_size: int
) -> float:
    """Attention FLOPs of one (query, key) pair over the linear FLOPs of one token, per layer.

    A pair costs ``2 * 2 * H * d`` (QK^T and PV); a token costs ``2 * params`` with the layer's
    projections ``D * (H + 2 Hkv) * d + H * d * D`` and the (one-expert) MLP ``3 * D * I``.
    """
    params = hidden_size * (num_heads + 2 * num_kv_heads) * head_dim
    params += num_heads * head_dim * hidden_size + 3 * hidden_size * mlp_size
    return 4 * num_heads * head_dim / (2 * params)


def fit_attn_ratio(p1: int, t1_s: float, p2: int, t2_s: float) -> float:
    """``attn_ratio`` from one-rank prefill times at two prompt lengths, fitting
    ``T(P) = a * P + b * P (P + 1) / 2`` (linear work per token, attention per pair): ``b / a``."""
    if p1 == p2:
        raise ValueError("fit_attn_ratio needs two different prompt lengths")
    q1, q2 = p1 * (p1 + 1) / 2, p2 * (p2 + 1) / 2
    det = p1 * q2 - p2 * q1
    a = (t1_s * q2 - t2_s * q1) / det
    b = (p1 * t2_s - p2 * t1_s) / det
    if a <= 0:
        raise ValueError(f"fit gives a non-positive linear cost ({a}): times {t1_s}, {t2_s}")
    return max(b, 0.0) / a


@dataclass(kw_only=True, slots=True)
class PrefillModelInputs:
    """Shapes and machine constants for :func:`predict_prefill`."""

    t1_compute_s: float
    """prefill compute of the whole prompt on one rank"""
    prompt_len: int
    chunk_size: int
    n_stages: int
    n_layers: int
    hidden_size: int
    kv_bytes_per_token_layer: int
    """2 * Hkv * head_dim * dtype bytes"""
    act_bytes: int = 4
    """bytes per activation element"""
    bw_bytes_per_s: float = 2e9
    latency_s: float = 50e-6
    attn_ratio: float = 0.0
    """attention cost of one (query, key) pair over one token's linear cost (0: ignore)"""
    chunk_schedule: str = "fixed"
    """``fixed`` chunks of ``chunk_size`` or ``balanced`` (equal cost, as many chunks)"""
    stage_chunk_s: list[list[float]] | None = None
    """measured compute of chunk k on stage s (``[n_stages][n_chunks]``); given, it replaces
    the split of ``t1_compute_s`` (which is then their sum)"""

    def __post_init__(self) -> None:
        if min(self.prompt_len, self.chunk_size, self.n_stages, self.n_layers) < 1:
            raise ValueError(f"prompt_len, chunk_size, n_stages, n_layers must be >= 1: {self}")
        if self.t1_compute_s < 0 or self.bw_bytes_per_s <= 0 or self.latency_s < 0:
            raise ValueError(f"need t1_compute_s >= 0, bw > 0, latency >= 0: {self}")


def predict_prefill(m: PrefillModelInputs) -> dict[str, float]:
    K, N = math.ceil(m.prompt_len / m.chunk_size), m.n_stages
    if m.chunk_schedule == "balanced":
        bounds = split_chunks_balanced(m.prompt_len, K, m.attn_ratio)
    elif m.chunk_schedule == "fixed":
        bounds = split_chunks(m.prompt_len, m.chunk_size)
    else:
        raise ValueError(f"chunk_schedule {m.chunk_schedule!r}: choose fixed or balanced")
    if m.stage_chunk_s is None:
        cost = [chunk_cost(a, b, m.attn_ratio) for a, b in bounds]
        total = sum(cost)
        t_k = [m.t1_compute_s / N * c / total for c in cost]  # one chunk on one stage
        times = [t_k] * N
        t1 = m.t1_compute_s
    else:
        times = m.stage_chunk_s
        if len(times) != N or any(len(row) != len(bounds) for row in times):
            raise ValueError(
                f"stage_chunk_s must be [{N} stages][{len(bounds)} chunks], got "
                f"{[len(row) for row in times]}"
            )
        t1 = sum(map(sum, times))
    t_c = max(map(max, times))
    compute_s = flow_shop_makespan(times, 0.0)
    hop_s = (
        m.latency_s
        + min(m.chunk_size, m.prompt_len) * m.hidden_size * m.act_bytes / m.bw_bytes_per_s
    )
    act_comm_s = flow_shop_makespan(times, hop_s) - compute_s
    bubble_s = max(0.0, compute_s - t1 / N)  # mean idle time of a stage (rounding: >= 0)
    kv_total = m.prompt_len * m.n_layers * m.kv_bytes_per_token_layer
    sync_s = (N - 1) * m.latency_s + (N - 1) / N * kv_total / m.bw_bytes_per_s if N > 1 else 0.0
    prefill_s = compute_s + act_comm_s
    total_s = prefill_s + sync_s
    return {
        "n_chunks": K,
        "chunk_stage_compute_s": t_c,
        "pipeline_compute_s": compute_s,
        "bubble_s": bubble_s,
        "bubble_frac": bubble_s / compute_s if compute_s > 0 else 0.0,
        "act_comm_s": act_comm_s,
        "kv_sync_s": sync_s,
        "kv_sync_bytes_recv_per_rank": (N - 1) / N * kv_total,
        "prefill_s": prefill_s,
        "prefill_plus_sync_s": total_s,
        "speedup": t1 / total_s if total_s > 0 else float("nan"),
        "efficiency": t1 / total_s / N if total_s > 0 else float("nan"),
    }


def summarize_ranks(ranks: list[dict[str, Any]]) -> dict[str, float]:
    """Whole-run metrics from every rank's ``RankTimings.metrics()`` (same t0 on all ranks)."""
    if not ranks:
        raise ValueError("no rank records to summarise")
    start = min(r["prefill_start_s"] for r in ranks)
    pre_end = max(r["prefill_end_s"] for r in ranks)
    kv_final = max(r["kv_final_s"] for r in ranks)
    s0 = min(r["kv_sync_start_s"] for r in ranks)
    s1 = max(r["kv_sync_end_s"] for r in ranks)
    exposed = max(0.0, s1 - pre_end)
    window = s1 - s0
    prefill = pre_end - start
    return {
        "prefill_s": prefill,
        "kv_ready_s": max(pre_end, s1) - start,
        "compute_max_s": max(r["compute_s"] for r in ranks),
        "bubble_frac": sum(r["bubble_s"] / r["prefill_s"] for r in ranks) / len(ranks),
        "last_kv_final_s": kv_final - start,
        "kv_sync_window_s": window,
        "kv_sync_exposed_s": exposed,
        # one rank has nothing to sync: no fraction to report
        "kv_sync_hidden_frac": 1.0 - exposed / window if window > 0 and len(ranks) > 1 else None,
        "kv_sync_bytes_recv": sum(r["kv_sync_bytes_recv"] for r in ranks),
        "decode_tok_per_s": min((r["decode_tok_per_s"] or 0.0) for r in ranks),
    }
