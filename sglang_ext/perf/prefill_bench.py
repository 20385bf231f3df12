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

__all__ = ["run_point", "compare_point", "sweep"]

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


_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def sweep(
    *,
    preset: str,
    num_layers: int | None,
    dtype: str,
    device: str,
    attention_backend: str,
    prompt_lens: list[int],
    nprocs: list[int],
    syncs: list[str],
    chunk_size: int,
    max_new_tokens: int,
    repeats: int,
    bw_gbps: float,
    latency_us: float,
    output: str,
    sglang_baseline: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every (prompt, N, sync) point against the 1-rank baseline of its prompt; append records.

    ``sglang_baseline``: ``sp_pp_sglang`` records of this run; each N=1 record then gets
    ``ratio_to_sglang`` against the tp1 one of its prompt (``engine.sglang_ratio``).
    """
    from sglang_ext.engine.model import DUMMY_PRESETS
    from sglang_ext.engine.sglang_ratio import attach_ratio_to_sglang
    from sglang_ext.perf.records import append_jsonl, make_record

    shape = DUMMY_PRESETS[preset]
    nb = _BYTES[dtype]
    shape_m = dict(
        n_layers=num_layers or shape["num_hidden_layers"],
        hidden_size=shape["hidden_size"],
        kv_bytes_per_token_layer=2 * shape["num_key_value_heads"] * shape["head_dim"] * nb,
    )
    common = [
        "--dummy-preset",
        preset,
        "--device",
        device,
        "--dtype",
        dtype,
        "--attention-backend",
        attention_backend,
        "--chunk-size",
        str(chunk_size),
        "--max-new-tokens",
        str(max_new_tokens),
        "--repeats",
        str(repeats),
    ]
    common += ["--num-layers", str(num_layers)] if num_layers else []
    common += ["--num-threads", "1"] if device == "cpu" else []  # baseline: one rank, one thread
    recs = []
    for plen in prompt_lens:
        args = [*common, "--prompt-len", str(plen)]
        base = run_point(1, args)
        for n in nprocs:
            for sync in syncs if n > 1 else syncs[:1]:
                ranks = base if n == 1 else run_point(n, [*args, "--sync", sync])
                m = compare_point(
                    ranks,
                    base,
                    shape=shape_m,
                    bw_bytes_per_s=bw_gbps * 1e9,
                    latency_s=latency_us * 1e-6,
                    act_bytes=nb,
                )
                m["per_rank"] = [
                    {k: v for k, v in r.items() if not k.startswith("_")} for r in ranks
                ]
                cfg = {
                    **{k: v for k, v in ranks[0]["_config"].items() if k != "log_dir"},
                    "nprocs": n,
                    "sync": sync if n > 1 else None,
                    "model_bw_gbps": bw_gbps,
                    "model_latency_us": latency_us,
                }
                rec = make_record("sp_pp", cfg, m)
                if sglang_baseline is not None:
                    attach_ratio_to_sglang([rec], sglang_baseline)
                append_jsonl(output, rec)
                recs.append(rec)
                h = m["measured_kv_sync_hidden_frac"]
                logger.info(
                    "P=%d N=%d %-8s prefill %.3fs (model %.3fs) kv-ready %.3fs speedup %.2f eff %.2f "
                    "bubble %.2f (model %.2f) sync hidden %s",
                    plen,
                    n,
                    sync if n > 1 else "-",
                    m["measured_prefill_s"],
                    m["model_prefill_s"],
                    m["measured_kv_ready_s"],
                    m["speedup"],
                    m["scaling_efficiency"],
                    m["measured_bubble_frac"],
                    m["model_bubble_frac"],
                    "n/a" if h is None else f"{h:.2f}",
                )
    return recs
