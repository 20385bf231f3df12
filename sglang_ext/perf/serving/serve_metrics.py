"""Serving metrics from per-request outputs, named as ``sglang.bench_serving`` names them.

The base numbers come from ``bench_serving.calculate_metrics`` itself; we add p90/p95
for every latency, goodput under SLOs, and failed requests with their errors.
Definitions (bench_serving): TTFT = time to the first streamed token; TPOT =
(E2E - TTFT) / (output_len - 1) per request with output_len > 1; ITL = the gaps
between streamed tokens (a chunk of k tokens counts as k gaps of equal size).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sglang_ext.perf.stats import summarize

from .bench_serving_compat import bench_serving_module

__all__ = ["serving_metrics", "per_request_tpot"]


class _NoRetokenize:
    """Stand-in tokenizer when none is given: retokenized counts are then dropped."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return []


def per_request_tpot(out: Any) -> float | None:
    """bench_serving's TPOT of one successful request (seconds), None if output_len <= 1."""
    if out.output_len > 1:
        return (out.latency - out.ttft) / (out.output_len - 1)
    return None


def _error_key(err: str) -> str:
    lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
    return lines[-1][:200] if lines else "unknown error (empty message)"


def serving_metrics(
    prompt_lens: Sequence[int],
    outputs: Sequence[Any],
    duration_s: float,
    *,
    tokenizer: Any | None = None,
    slo_ttft_ms: float | None = None,
    slo_tpot_ms: float | None = None,
    slo_e2e_ms: float | None = None,
) -> dict[str, Any]:
    """Flat metrics dict (units in the key names) for a record's ``metrics``."""
    if len(prompt_lens) != len(outputs):
        raise ValueError(f"{len(prompt_lens)} prompt lengths for {len(outputs)} outputs")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    bs = bench_serving_module()
    rows = [bs.DatasetRow(prompt="", prompt_len=n, output_len=0) for n in prompt_lens]
    ok = [o for o in outputs if o.success]
    if ok:
        base, _ = bs.calculate_metrics(
            input_requests=rows,
            outputs=list(outputs),
            dur_s=duration_s,
            tokenizer=tokenizer or _NoRetokenize(),
            backend="sglang",
        )
        b = {
            k: float(v) if isinstance(v, float) else v for k, v in dataclasses.asdict(base).items()
        }
    else:  # bench_serving's np.percentile raises on an all-failed run
        b = {f.name: 0 for f in dataclasses.fields(bs.BenchmarkMetrics)}
    ttfts = [o.ttft for o in ok]
    e2es = [o.latency for o in ok]
    itls = [x for o in ok for x in o.itl]
    tpots = [t for t in map(per_request_tpot, ok) if t is not None]
    m: dict[str, Any] = {
        "duration_s": duration_s,
        "num_requests": len(outputs),
        "completed": b["completed"],
        "failed_requests": len(outputs) - len(ok),
        "total_input_tokens": b["total_input"],
        "total_output_tokens": b["total_output"],
        "request_throughput": b["request_throughput"],
        "input_throughput": b["input_throughput"],
        "output_throughput": b["output_throughput"],
        "total_throughput": b["total_throughput"],
        "concurrency": b["concurrency"],
    }
    if tokenizer is not None:
        m["total_output_tokens_retokenized"] = b["total_output_retokenized"]
        m["output_throughput_retokenized"] = b["output_throughput_retokenized"]
    for name, vals in (("ttft", ttfts), ("tpot", tpots), ("itl", itls), ("e2e_latency", e2es)):
        m.update(summarize(vals, name))
    # bench_serving's own numbers must agree with ours; keep its p99s as the reference
    for k in (
        "mean_ttft_ms",
        "median_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "p99_tpot_ms",
        "mean_itl_ms",
        "p99_itl_ms",
        "max_itl_ms",
    ):
        m[k] = b[k]
    if ok:
        for k in ("mean_e2e_latency_ms", "median_e2e_latency_ms", "p99_e2e_latency_ms"):
            m[k] = b[k]
    slos = {"ttft": slo_ttft_ms, "tpot": slo_tpot_ms, "e2e": slo_e2e_ms}
    if any(v is not None for v in slos.values()):
        good = 0
        for o in ok:
            tpot = per_request_tpot(o) or 0.0
            if (
                (slo_ttft_ms is None or o.ttft * 1000 <= slo_ttft_ms)
                and (slo_tpot_ms is None or tpot * 1000 <= slo_tpot_ms)
                and (slo_e2e_ms is None or o.latency * 1000 <= slo_e2e_ms)
            ):
                good += 1
        m["good_requests"] = good
        m["request_goodput"] = good / duration_s
        m["goodput_fraction"] = good / len(outputs) if outputs else 0.0
        m["slo"] = {f"{k}_ms": v for k, v in slos.items() if v is not None}
    m["errors"] = dict(Counter(_error_key(o.error) for o in outputs if not o.success))
    return m
