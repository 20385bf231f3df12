"""Prefill latency of the native SP+PP engine vs prompt length, N = 1..4 ranks, pairwise vs
ring KV sync, next to the analytic model (sglang_ext.engine.perf_model); then sglang 0.4.7's
own prefill on the same weights and prompts (``--sglang tp1`` / ``pp2`` / ``tp2``), timed in
the same run before the engine; with ``tp1`` every N=1 record gets ``ratio_to_sglang``.

    PYTHONPATH=. python bench/bench_sp_pp.py --prompt-lens 256,512,1024 --nprocs 1,2,3,4
    PYTHONPATH=. python bench/bench_sp_pp.py --device cuda --dummy-preset qwen3-30b-a3b-1e \\
        --dtype bfloat16 --nprocs 1 --prompt-lens 4096,16384 --chunk-size 4096 --sglang tp1 \\
        --output bench/results/h200/sp_pp.jsonl

On CPU each rank runs on one thread and the baseline is one rank on one thread.
Records (one per point) go to --output; see sglang_ext/perf/records.py for the schema.
"""

from __future__ import annotations

import argparse
import logging

from sglang_ext.engine.model import DUMMY_PRESETS
from sglang_ext.engine.sglang_compare import SGLANG_CONFIGS, bench_sglang
from sglang_ext.perf.prefill_bench import sweep


def _ints(s: str) -> list[int]:
    return [int(x) for x in s.split(",") if x]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--dummy-preset", default="tiny-moe-1e", choices=sorted(DUMMY_PRESETS))
    p.add_argument(
        "--num-layers", type=int, default=None, help="keep the first N layers of the preset"
    )
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--attention-backend", default="auto", choices=("auto", "sdpa", "flashinfer"))
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
    p.add_argument("--latency-us", type=float, default=50.0, help="link latency for the model (us)")
    p.add_argument(
        "--sglang",
        default="pp2,tp2",
        help=f"sglang configs to time ('' for none): {sorted(SGLANG_CONFIGS)}",
    )
    p.add_argument(
        "--sglang-flags",
        default="",
        help="extra server flags for every sglang config, space-separated "
        "(e.g. '--disable-cuda-graph': prefill never runs in a graph, start-up is shorter)",
    )
    p.add_argument("--sglang-log-dir", default="/tmp", help="sglang server logs go here")
    p.add_argument("--output", default="bench/results/sp_pp_cpu.jsonl")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sglang_recs = None
    if a.sglang:  # first: the server is gone (and its GPU memory free) before the engine runs
        sglang_recs = bench_sglang(
            preset=a.dummy_preset,
            num_layers=a.num_layers,
            dtype=a.dtype,
            device=a.device,
            prompt_lens=a.prompt_lens,
            configs=a.sglang.split(","),
            repeats=a.repeats + 1,
            output=a.output,
            log_dir=a.sglang_log_dir,
            extra_flags=a.sglang_flags.split(),
        )
    sweep(
        preset=a.dummy_preset,
        num_layers=a.num_layers,
        dtype=a.dtype,
        device=a.device,
        attention_backend=a.attention_backend,
        prompt_lens=a.prompt_lens,
        nprocs=a.nprocs,
        syncs=a.syncs.split(","),
        chunk_size=a.chunk_size,
        max_new_tokens=a.max_new_tokens,
        repeats=a.repeats,
        bw_gbps=a.bw_gbps,
        latency_us=a.latency_us,
        output=a.output,
        sglang_baseline=sglang_recs if "tp1" in a.sglang.split(",") else None,
    )


if __name__ == "__main__":
    main()
