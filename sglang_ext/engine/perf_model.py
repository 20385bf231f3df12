"""Analytic model of SP+PP prefill (compute, pipeline bubble, activation and KV-sync traffic),
and the summary of measured per-rank records that the model is compared with.

Model, for a prompt of P tokens in K = ceil(P / chunk) chunks over N stages:

* compute of one chunk on one stage: ``t_c = T1 / (K * N)`` (T1: one rank, whole model);
* fill-drain pipeline: ``K + N - 1`` steps of ``t_c`` (see ``pipeline.schedule``), plus
  ``N - 1`` activation hops ``alpha + chunk * D * bytes / bw`` on the critical path;
* bubble fraction of a stage: ``(N - 1) / (K + N - 1)``;
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

__all__ = ["PrefillModelInputs", "predict_prefill", "summarize_ranks"]


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

    def __post_init__(self) -> None:
        if min(self.prompt_len, self.chunk_size, self.n_stages, self.n_layers) < 1:
            raise ValueError(f"prompt_len, chunk_size, n_stages, n_layers must be >= 1: {self}")
        if self.t1_compute_s < 0 or self.bw_bytes_per_s <= 0 or self.latency_s < 0:
            raise ValueError(f"need t1_compute_s >= 0, bw > 0, latency >= 0: {self}")


def predict_prefill(m: PrefillModelInputs) -> dict[str, float]:
    K, N = math.ceil(m.prompt_len / m.chunk_size), m.n_stages
    t_c = m.t1_compute_s / (K * N)
    compute_s = (K + N - 1) * t_c
    hop_s = (
        m.latency_s
        + min(m.chunk_size, m.prompt_len) * m.hidden_size * m.act_bytes / m.bw_bytes_per_s
    )
    act_comm_s = (N - 1) * hop_s
    kv_total = m.prompt_len * m.n_layers * m.kv_bytes_per_token_layer
    sync_s = (N - 1) * m.latency_s + (N - 1) / N * kv_total / m.bw_bytes_per_s if N > 1 else 0.0
    prefill_s = compute_s + act_comm_s
    total_s = prefill_s + sync_s
    return {
        "n_chunks": K,
        "chunk_stage_compute_s": t_c,
        "pipeline_compute_s": compute_s,
        "bubble_s": (N - 1) * t_c,
        "bubble_frac": (N - 1) / (K + N - 1),
        "act_comm_s": act_comm_s,
        "kv_sync_s": sync_s,
        "kv_sync_bytes_recv_per_rank": (N - 1) / N * kv_total,
        "prefill_s": prefill_s,
        "prefill_plus_sync_s": total_s,
        "speedup": m.t1_compute_s / total_s if total_s > 0 else float("nan"),
        "efficiency": m.t1_compute_s / total_s / N if total_s > 0 else float("nan"),
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
