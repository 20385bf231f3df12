"""Prefill latency of the native SP+PP engine vs prompt length, N = 1..4 ranks, pairwise vs
ring KV sync, next to the analytic model (sglang_ext.engine.perf_model).

    python bench/bench_sp_pp.py --prompt-lens 256,512,1024 --nprocs 1,2,3,4
    python bench/bench_sp_pp.py --device cuda --dummy-preset qwen3-30b-a3b-1e --nprocs 1 \\
        --prompt-lens 1024,4096 --dtype bfloat16

On CPU each rank runs on one thread and the baseline is one rank on one thread.
Records (one per point) go to --output; see sglang_ext/perf/records.py for the schema.
"""

from __future__ import annotations

import argparse
import logging

from sglang_ext.engine.bench import compare_point, run_point
from sglang_ext.engine.model import DUMMY_PRESETS
from sglang_ext.perf.records import append_jsonl, make_record

log = logging.getLogger("bench_sp_pp")
_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dummy-preset", default="tiny-moe-1e", choices=sorted(DUMMY_PRESETS))
    p.add_argument("--num-layers", type=int, default=None)
    p.add_argument("--dtype", default="float32", choices=sorted(_BYTES))
    p.add_argument("--attention-backend", default="auto")
    p.add_argument("--prompt-lens", type=_ints, default=[256, 512, 1024])
    p.add_argument("--nprocs", type=_ints, default=[1, 2, 3, 4])
    p.add_argument("--syncs", default="pairwise,ring")
    p.add_argument("--chunk-size", type=int, default=128)
    p.add_argument("--max-new-tokens", type=int, default=4)
    p.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="engine repeats; the last is kept (the first warms up)",
    )
    p.add_argument("--bw-gbps", type=float, default=2.0, help="link bandwidth for the model (GB/s)")
    p.add_argument("--latency-us", type=float, default=50.0, help="link latency for the model")
    p.add_argument("--output", default="bench/results/sp_pp_cpu.jsonl")
    p.add_argument(
        "--sglang", default="pp2,tp2", help="sglang configs to time too ('' for none): pp2, tp2"
    )
    p.add_argument("--sglang-log-dir", default="/tmp", help="server logs go here")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    shape = dict(DUMMY_PRESETS[a.dummy_preset])
    n_layers = a.num_layers or shape["num_hidden_layers"]
    nb = _BYTES[a.dtype]
    shape_m = dict(
        n_layers=n_layers,
        hidden_size=shape["hidden_size"],
        kv_bytes_per_token_layer=2 * shape["num_key_value_heads"] * shape["head_dim"] * nb,
    )
    common = [
        "--dummy-preset",
        a.dummy_preset,
        "--device",
        a.device,
        "--dtype",
        a.dtype,
        "--attention-backend",
        a.attention_backend,
        "--chunk-size",
        str(a.chunk_size),
        "--max-new-tokens",
        str(a.max_new_tokens),
        "--repeats",
        str(a.repeats),
    ]
    if a.num_layers:
        common += ["--num-layers", str(a.num_layers)]
    if a.device == "cpu":
        common += ["--num-threads", "1"]
    syncs = a.syncs.split(",")
    for plen in a.prompt_lens:
        args = [*common, "--prompt-len", str(plen)]
        base = run_point(1, args)
        for n in a.nprocs:
            for sync in syncs if n > 1 else syncs[:1]:
                ranks = base if n == 1 else run_point(n, [*args, "--sync", sync])
                m = compare_point(
                    ranks,
                    base,
                    shape=shape_m,
                    bw_bytes_per_s=a.bw_gbps * 1e9,
                    latency_s=a.latency_us * 1e-6,
                    act_bytes=nb,
                )
                cfg = {
                    **{k: v for k, v in ranks[0]["_config"].items() if k != "log_dir"},
                    "nprocs": n,
                    "sync": sync,
                    "model_bw_gbps": a.bw_gbps,
                    "model_latency_us": a.latency_us,
                }
                m["per_rank"] = [
                    {k: v for k, v in r.items() if not k.startswith("_")} for r in ranks
                ]
                append_jsonl(a.output, make_record("sp_pp", cfg, m))
                log.info(
                    "P=%d N=%d %-8s prefill %.3fs (model %.3fs) kv-ready %.3fs speedup %.2f eff %.2f "
                    "bubble %.2f (model %.2f) sync hidden %.2f",
                    plen,
                    n,
                    sync,
                    m["measured_prefill_s"],
                    m["model_prefill_s"],
                    m["measured_kv_ready_s"],
                    m["speedup"],
                    m["scaling_efficiency"],
                    m["measured_bubble_frac"],
                    m["model_bubble_frac"],
                    m["measured_kv_sync_hidden_frac"],
                )
    if a.sglang:
        _bench_sglang(a, shape)


def _bench_sglang(a: argparse.Namespace, shape: dict) -> None:
    """sglang 0.4.7's own --pp-size 2 / --tp-size 2 prefill on the same weights and prompts."""
    import tempfile

    import torch

    from sglang_ext.engine.sglang_compare import dummy_checkpoint, prompt_ids, time_sglang_prefill

    flags = {"pp2": ["--pp-size", "2"], "tp2": ["--tp-size", "2"]}
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        a.dtype
    ]
    with tempfile.TemporaryDirectory(prefix="sp_pp_ckpt_") as d:
        ckpt = str(dummy_checkpoint(a.dummy_preset, a.num_layers, dtype, 0, d))
        prompts = {n: prompt_ids(n, shape["vocab_size"], 0) for n in a.prompt_lens}
        for name in a.sglang.split(","):
            dev = ["--device", a.device, "--dtype", a.dtype]
            res = time_sglang_prefill(
                ckpt,
                [*flags[name], *dev],
                prompts,
                repeats=a.repeats + 1,
                log_file=f"{a.sglang_log_dir}/sglang_{name}.log",
            )
            for plen, pt in res["points"].items():
                cfg = {
                    "engine": f"sglang-0.4.7 {name}",
                    "dummy_preset": a.dummy_preset,
                    "num_layers": a.num_layers,
                    "device": a.device,
                    "dtype": a.dtype,
                    "prompt_len": plen,
                    "flags": flags[name],
                }
                append_jsonl(
                    a.output,
                    make_record("sp_pp_sglang", cfg, {**pt, "startup_s": res["startup_s"]}),
                )
                log.info(
                    "P=%d sglang %s prefill %.3fs (median %.3fs)",
                    plen,
                    name,
                    pt["prefill_s"],
                    pt["prefill_median_s"],
                )


if __name__ == "__main__":
    main()
