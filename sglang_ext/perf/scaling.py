"""Scaling: speedup and efficiency against one device, pipeline bubbles, bench_one_batch runs.

Definitions (t = latency of the same work, n = devices):
  speedup    = t_1 / t_n
  efficiency = t_1 / (n * t_n)            (1.0 = perfect linear scaling)
  PP bubble, GPipe schedule with p stages and m microbatches: (p - 1) / (m + p - 1)
  PP bubble, measured: 1 - sum(stage busy time) / (p * wall span)
Latencies come from ``sglang.bench_one_batch`` (prefill, median decode step, total),
which supports TP but not PP in 0.4.7 (it builds its ModelRunner with ``pp_size=1``);
PP rows come from our prefill engine and carry ``pp_size`` and per-stage busy times.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sglang_ext.perf.serving.server_process import run_in_group

__all__ = [
    "speedup",
    "efficiency",
    "pp_bubble_ratio",
    "measured_bubble_ratio",
    "scaling_table",
    "run_bench_one_batch",
    "BENCH_ONE_BATCH_METRICS",
]

logger = logging.getLogger(__name__)
BENCH_ONE_BATCH_METRICS = ("prefill_latency", "median_decode_latency", "total_latency")


def speedup(t_base: float, t_n: float) -> float:
    if t_base <= 0 or t_n <= 0:
        raise ValueError(f"latencies must be > 0, got t_base={t_base}, t_n={t_n}")
    return t_base / t_n


def efficiency(t_base: float, t_n: float, n: int) -> float:
    if n < 1:
        raise ValueError(f"device count must be >= 1, got {n}")
    return speedup(t_base, t_n) / n


def pp_bubble_ratio(num_stages: int, num_microbatches: int) -> float:
    if num_stages < 1 or num_microbatches < 1:
        raise ValueError(
            f"need stages >= 1 and microbatches >= 1, got {num_stages}, {num_microbatches}"
        )
    return (num_stages - 1) / (num_microbatches + num_stages - 1)


def measured_bubble_ratio(stage_busy_s: Sequence[float], span_s: float) -> float:
    if span_s <= 0 or not stage_busy_s:
        raise ValueError(
            f"need a positive span and at least one stage, got {span_s}, {stage_busy_s}"
        )
    if max(stage_busy_s) > span_s * (1 + 1e-9):
        raise ValueError(f"a stage was busy ({max(stage_busy_s)}) longer than the span ({span_s})")
    return 1.0 - sum(stage_busy_s) / (len(stage_busy_s) * span_s)


def scaling_table(
    rows: Sequence[dict[str, Any]],
    *,
    parallel_key: str = "tp_size",
    keys: Sequence[str] = ("batch_size", "input_len", "output_len"),
    metrics: Sequence[str] = BENCH_ONE_BATCH_METRICS,
) -> list[dict[str, Any]]:
    """Copy of ``rows`` with ``speedup_<m>`` and ``efficiency_<m>`` against the n=1 row."""
    base = {tuple(r.get(k) for k in keys): r for r in rows if r.get(parallel_key, 1) == 1}
    out = []
    for r in rows:
        r = dict(r)
        b = base.get(tuple(r.get(k) for k in keys))
        n = int(r.get(parallel_key, 1))
        for m in metrics:
            if b is not None and r.get(m) and b.get(m):
                r[f"speedup_{m}"] = speedup(b[m], r[m])
                r[f"efficiency_{m}"] = efficiency(b[m], r[m], n)
        out.append(r)
    return out


def run_bench_one_batch(
    server_args: Sequence[str],
    *,
    batch_sizes: Sequence[int],
    input_lens: Sequence[int],
    output_len: int,
    runner: str = f"{sys.executable} -m sglang.bench_one_batch",
    timeout_s: float = 3600.0,
    log_path: str | Path | None = None,
) -> list[dict[str, Any]]:
    """Run bench_one_batch once (all batch sizes x input lengths); return its result rows."""
    fd, result = tempfile.mkstemp(suffix=".jsonl")
    os.close(fd)
    cmd = [
        *shlex.split(runner),
        *server_args,
        "--batch-size",
        *map(str, batch_sizes),
        "--input-len",
        *map(str, input_lens),
        "--output-len",
        str(output_len),
        "--result-filename",
        result,
    ]
    logger.info("running %s", " ".join(cmd))
    rc = run_in_group(cmd, timeout_s=timeout_s, log_path=log_path)  # no leftover TP ranks
    if rc != 0:
        raise RuntimeError(
            f"bench_one_batch {'timed out' if rc is None else f'exited {rc}'}: "
            f"{' '.join(cmd)} (log: {log_path or 'pass log_path to keep it'})"
        )
    rows = [json.loads(line) for line in Path(result).read_text().splitlines() if line.strip()]
    os.unlink(result)
    if not rows:
        raise RuntimeError(f"bench_one_batch wrote no results: {' '.join(cmd)}")
    return rows
