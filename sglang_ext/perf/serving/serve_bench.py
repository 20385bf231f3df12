"""One serving benchmark as a record, and the client's own overhead on an instant server."""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path
from typing import Any

from sglang_ext.perf.records import make_record

from .loadgen import LoadConfig, run_load_sync
from .serve_metrics import serving_metrics
from .server_process import ServerProcess, free_port

__all__ = ["serving_record", "measure_client_overhead"]

logger = logging.getLogger(__name__)


def serving_record(
    cfg: LoadConfig,
    *,
    tokenizer: Any | None = None,
    output_details: bool = False,
    extra_config: dict[str, Any] | None = None,
    bench: str = "serve",
) -> dict[str, Any]:
    """Run ``cfg`` against its server and return a ``sglang_ext.serve/1`` record."""
    res = run_load_sync(cfg, tokenizer)
    m = serving_metrics(
        res.prompt_lens,
        res.outputs,
        res.duration_s,
        tokenizer=tokenizer,
        slo_ttft_ms=cfg.slo_ttft_ms,
        slo_tpot_ms=cfg.slo_tpot_ms,
        slo_e2e_ms=cfg.slo_e2e_ms,
    )
    m["gpu_memory"] = res.gpu_memory
    m["peak_gpu_mem_used_gb"] = res.peak_gpu_mem_used_gb
    if output_details:
        m["details"] = {
            "prompt_lens": res.prompt_lens,
            "output_lens": [o.output_len for o in res.outputs],
            "ttfts_s": [o.ttft for o in res.outputs],
            "e2e_latencies_s": [o.latency for o in res.outputs],
            "itls_s": [o.itl for o in res.outputs],
            "success": [o.success for o in res.outputs],
        }
    config = {**dataclasses.asdict(cfg), **(extra_config or {})}
    logger.info(
        "%s: %d/%d ok, %.2f req/s, median TTFT %.1f ms, median TPOT %.2f ms",
        cfg.base_url,
        m["completed"],
        m["num_requests"],
        m["request_throughput"],
        m["median_ttft_ms"],
        m["median_tpot_ms"],
    )
    return make_record(bench, config, m)


def measure_client_overhead(
    *, num_prompts: int = 200, output_length: int = 16, max_concurrency: int | None = None
) -> dict[str, Any]:
    """Load an instant server (separate process, no delays) and report the client's cost.

    Every millisecond measured here is spent by the client, the local network stack and
    the instant server's own Python; they bound what the client adds to real numbers.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "sglang_ext.perf.serving.fake_server", "--port", str(port)]
    root = str(Path(__file__).resolve().parents[2])  # importable even without `pip install -e`
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    with ServerProcess(cmd, url, ready_paths=("/health",), ready_timeout_s=60, env=env):
        cfg = LoadConfig(
            base_url=url,
            num_prompts=num_prompts,
            sequence_length=16,
            output_length=output_length,
            vocab_size=1000,
            disable_progress=True,
            max_concurrency=max_concurrency,
            sample_gpu_memory=False,
        )
        rec = serving_record(cfg, bench="client_overhead")
    m = rec["metrics"]
    rec["metrics"] = {
        k: m[k]
        for k in (
            "completed",
            "failed_requests",
            "duration_s",
            "request_throughput",
            "output_throughput",
            "mean_ttft_ms",
            "median_ttft_ms",
            "p99_ttft_ms",
            "mean_itl_ms",
            "p99_itl_ms",
            "mean_e2e_latency_ms",
            "median_e2e_latency_ms",
            "p99_e2e_latency_ms",
        )
    }
    return rec
