"""Library side of ``bench/bench_sp_pp.py``: run one (N, prompt, sync) point through the
launcher, read the per-rank records back, and set them next to the analytic model."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from sglang_ext.engine.launcher import launch
from sglang_ext.engine.perf_model import PrefillModelInputs, predict_prefill, summarize_ranks
from sglang_ext.perf.records import read_jsonl

__all__ = ["run_point", "compare_point"]

logger = logging.getLogger(__name__)


def run_point(
    nproc: int, engine_args: list[str], *, max_time_s: float = 600.0
) -> list[dict[str, Any]]:
    """Launch ``nproc`` ranks; return each rank's metrics of the last repeat."""
    with tempfile.TemporaryDirectory(prefix="sp_pp_") as d:
        rc = launch(nproc, [*engine_args, "--log-dir", d], max_time_s=max_time_s)
        if rc != 0:
            raise RuntimeError(
                f"engine run failed (exit {rc}) for N={nproc}: {' '.join(engine_args)}"
            )
        out = []
        for r in range(nproc):
            recs = list(read_jsonl(Path(d) / f"rank{r}.jsonl"))
            out.append(
                {**recs[-1]["metrics"], "_config": recs[-1]["config"], "_env": recs[-1]["env"]}
            )
        return out


def compare_point(
    ranks: list[dict[str, Any]],
    baseline: list[dict[str, Any]],
    *,
    shape: dict[str, int],
    bw_bytes_per_s: float,
    latency_s: float,
    act_bytes: int,
) -> dict[str, Any]:
    """Measured summary of a run, its scaling against the 1-rank baseline, and the model."""
    meas = summarize_ranks(ranks)
    base = summarize_ranks(baseline)
    n = len(ranks)
    cfg = ranks[0]["_config"]
    model = predict_prefill(
        PrefillModelInputs(
            t1_compute_s=baseline[0]["compute_s"],
            prompt_len=ranks[0]["prompt_len"],
            chunk_size=cfg["chunk_size"],
            n_stages=n,
            n_layers=shape["n_layers"],
            hidden_size=shape["hidden_size"],
            kv_bytes_per_token_layer=shape["kv_bytes_per_token_layer"],
            act_bytes=act_bytes,
            bw_bytes_per_s=bw_bytes_per_s,
            latency_s=latency_s,
        )
    )
    speedup = base["kv_ready_s"] / meas["kv_ready_s"]
    return {
        **{f"measured_{k}": v for k, v in meas.items()},
        "baseline_prefill_s": base["prefill_s"],
        "speedup": speedup,
        "scaling_efficiency": speedup / n,
        **{f"model_{k}": v for k, v in model.items()},
    }
