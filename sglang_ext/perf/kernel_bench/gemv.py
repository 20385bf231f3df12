"""The skinny-GEMM kernel (``sglang_ext.kernels.gemv``) against cuBLAS at decode shapes.

The linears of a decode step multiply M = 1..32 tokens by the q/k/v or the output
projection, or the one expert's gate/up and down projections; cuBLAS (``F.linear``, what sglang runs) takes a split-K kernel and a reduce
kernel for them on the H200.  Per (shape, M) this times ``F.linear`` and our kernel under
every config of a sweep, plus :func:`default_config`'s pick, as CUDA-graph replays over
weight copies that rotate past the L2, and sets each against the weight-read floor (weight
bytes over the same run's device-copy bandwidth) and a float32 reference.

Shapes by name, ``<model>-<qkv|o|gate_up|down>[@tp<N>]`` (:func:`shape_nk`): the [N, K]
weight of one TP rank of Qwen3-30B-A3B or Qwen3-235B-A22B (``sglang_ext.presets``).
``bench/bench_gemv.py`` is the script; ``--write-table`` turns its records into the table
that ``kernels.gemv_dispatch`` (serving's linears) reads.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from triton.runtime import OutOfResources

from sglang_ext.kernels import pdl
from sglang_ext.kernels.gemv import MAX_M, GemvConfig, default_config, gemv
from sglang_ext.kernels.gemv_dispatch import CUBLAS  # the ``kernel`` of the baseline rows

__all__ = [
    "CUBLAS", "GemvBenchArgs", "SHAPE_MODELS", "bench_point", "main", "shape_nk",
    "write_gemv_table",
]  # fmt: skip

SHAPE_MODELS = {"qwen3-30b": "qwen3-30b-a3b-1e", "qwen3-235b": "qwen3-235b-a22b-1e"}
"""Model prefix of a shape name -> its ``sglang_ext.presets`` name."""
_SHAPE = re.compile(r"(qwen3-30b|qwen3-235b)-(qkv|o|gate_up|down)(?:@tp(\d+))?")


def shape_nk(name: str) -> tuple[int, int]:
    """(N, K) of one TP rank's weight: 'qwen3-30b-qkv@tp8' -> (768, 2048).

    ``qkv`` is sglang's ``QKVParallelLinear``: N = (H / tp + 2 * KV heads per rank) * head
    dim, K = hidden, where a rank holds KV / tp heads, or one replicated head once tp >= KV.
    ``o`` is the ``RowParallelLinear`` after attention: N = hidden, K = H / tp * head dim.
    ``gate_up`` and ``down`` are the one expert's ``tp``-mode shard (``SingleExpertMoE``):
    N = 2 * I / tp, K = hidden, and N = hidden, K = I / tp (I: moe_intermediate_size)."""
    m = _SHAPE.fullmatch(name)
    if not m:
        raise ValueError(
            f"gemv shape {name!r}: write <model>-<qkv|o|gate_up|down>[@tp<N>], model one of "
            f"{', '.join(SHAPE_MODELS)} (e.g. qwen3-30b-o@tp4)"
        )
    from sglang_ext.presets import preset_config

    model, proj, tp = m.group(1), m.group(2), int(m.group(3) or 1)
    c = preset_config(SHAPE_MODELS[model])
    h, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    inter = c["moe_intermediate_size"]
    if proj in ("gate_up", "down"):
        if tp < 1 or inter % tp:
            raise ValueError(f"gemv shape {name!r}: tp {tp} must divide I={inter}")
        return (
            (2 * inter // tp, c["hidden_size"])
            if proj == "gate_up"
            else (c["hidden_size"], inter // tp)
        )
    if tp < 1 or h % tp or (kv % tp and tp % kv):
        raise ValueError(
            f"gemv shape {name!r}: tp {tp} must divide the {h} query heads and divide, or be "
            f"a multiple of, the {kv} KV heads"
        )
    if proj == "o":
        return c["hidden_size"], h // tp * d
    return (h // tp + 2 * max(1, kv // tp)) * d, c["hidden_size"]


_BASE_SHAPES = [
    f"{model}-{proj}" for model in SHAPE_MODELS for proj in ("qkv", "o", "gate_up", "down")
]


@dataclass(kw_only=True, slots=True)
class GemvBenchArgs:
    """What the gemv bench runs."""

    shapes: list[str] = field(
        default_factory=lambda: _BASE_SHAPES + [s + "@tp8" for s in _BASE_SHAPES]
    )
    """Weights: <model>-<qkv|o|gate_up|down>[@tp<N>], model qwen3-30b or qwen3-235b."""
    batch_sizes: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 16, 32])
    """Tokens per call (M), 1..32."""
    configs: list[str] = field(
        default_factory=lambda: [
            "n16k256w4s3d1", "n16k512w4s3d1", "n16k512w2s3d1", "n16k1024w4s2d1",
            "n32k128w4s4d1", "n32k256w4s3d1", "n64k128w4s3d1", "n64k256w4s2d1",
            "n16k512w4s2d0", "n32k256w4s2d0", "n64k128w4s2d0",
            # M=1, CUDA cores: few rows and most of K per program, so one program has its
            # whole slice in flight (call 31: 30B o_proj 9.0 -> 6.8 us, gate_up 5.4 -> 3.9)
            "n1k2048w1s2d0", "n1k4096w2s2d0", "n1k8192w4s1d0", "n2k2048w2s2d0",
            "n2k4096w4s2d0", "n2k8192w8s1d0", "n4k1024w2s2d0", "n4k2048w4s2d0",
            "n4k4096w8s1d0", "n4k4096w8s2d0", "n4k8192w16s1d0", "n8k1024w4s2d0",
            "n8k1024w4s3d0", "n8k2048w8s1d0", "n8k2048w8s2d0", "n8k4096w16s1d0",
            "n16k1024w8s2d0", "n16k2048w16s1d0", "n16k512w8s3d0", "n32k512w16s2d0",
            # split over K: 16-row tensor-core tiles with enough programs for 132 SMs at
            # M > 1 (a 2048-row weight has 128 tiles)
            "n16k256w4s3d1p2", "n16k256w4s3d1p4", "n16k128w4s4d1p4", "n16k128w4s4d1p8",
            "n16k512w4s2d1p2", "n16k512w4s2d1p4", "n16k256w2s3d1p4", "n32k128w4s4d1p2",
            "n32k128w4s4d1p4", "n16k64w4s4d1p8",
        ]
    )  # fmt: skip
    """Kernel launches, n<BLOCK_N>k<BLOCK_K>w<warps>s<stages>d<use_dot>; d0 ones run at M=1
    only.  default_config's pick is timed too, listed or not."""
    rep_ms: float = 20.0
    """do_bench repetition budget per measurement."""
    output_file: str = ""
    """Default bench/results/<gpu>/gemv.jsonl."""
    write_table: bool = False
    """Write this run's choice per (shape, M) into the device's gemv table (serving's
    linears read it; ``sglang_ext.kernels.gemv_dispatch``)."""
    keep_unmeasured: bool = False
    """With --write-table: keep the table's buckets at the M this run did not measure (a
    re-measurement of some batch sizes)."""
    table_from: str = ""
    """Write the table from these records (one run's) instead, without a GPU (for the GPU
    and Triton version the records name)."""

    def __post_init__(self) -> None:
        for s in self.shapes:
            shape_nk(s)
        for c in self.configs:
            GemvConfig.parse(c)
        if not self.batch_sizes or not all(1 <= m <= MAX_M for m in self.batch_sizes):
            raise ValueError(f"--batch-sizes {self.batch_sizes}: each in 1..{MAX_M}")


def bench_point(
    shape: str,
    m: int,
    args: GemvBenchArgs,
    copy_gbps: float,
    *,
    device: str = "cuda",
    dtype: torch.dtype = torch.bfloat16,
    timer: Callable[..., float] | None = None,
    rotate_bytes: int = 256 << 20,
) -> list[tuple[dict, dict]]:
    """(config, metrics) rows of one (shape, M): ``F.linear`` first, then default_config's
    launch, then the other configs (d0 ones only at M == 1; one that does not fit the GPU's
    resources is skipped, with a note); graph medians (``timer``, default
    ``perf.timing.time_graph``) over weight copies of ``rotate_bytes`` in all (at least two),
    each output checked against float32 on the first copy."""
    from sglang_ext.perf.timing import time_graph

    timer = timer or time_graph
    n, k = shape_nk(shape)
    w_bytes = n * k * torch.empty(0, dtype=dtype).element_size()
    dev = torch.device(device)
    g = torch.Generator(device=dev).manual_seed(0)
    sets = [
        torch.randn(n, k, device=dev, dtype=dtype, generator=g)
        for _ in range(max(2, math.ceil(rotate_bytes / w_bytes)))
    ]
    x = torch.randn(m, k, device=dev, dtype=dtype, generator=g)
    ref = F.linear(x.float(), sets[0].float())
    out = torch.empty(m, n, device=dev, dtype=dtype)
    floor = w_bytes / (copy_gbps * 1e3)
    default = default_config(m, n, k)
    listed = [GemvConfig.parse(c) for c in args.configs]
    launches = [c for c in dict.fromkeys([default, *listed]) if c.use_dot or m == 1]

    def rel_err(y: torch.Tensor) -> float:
        return ((y.float() - ref).abs().max() / ref.abs().max()).item()

    base = {"shape": shape, "n": n, "k": k, "m": m, "dtype": str(dtype).removeprefix("torch."),
            "weight_sets": len(sets), "pdl": pdl.enabled(x)}  # fmt: skip

    def cublas(w: torch.Tensor) -> torch.Tensor:
        return F.linear(x, w)

    err = rel_err(cublas(sets[0]))
    conf = {**base, "kernel": CUBLAS, "gemv_config": None, "is_default": False}
    timed = [(conf, err, timer(cublas, sets, rep_ms=args.rep_ms))]
    for cfg in launches:

        def call(w: torch.Tensor, cfg: GemvConfig = cfg) -> None:
            gemv(x, w, out=out, config=cfg)

        try:
            call(sets[0])
        except OutOfResources as e:  # e.g. shared memory: one launch off the sweep, not all
            print(f"{shape} M={m}: {cfg.name} skipped ({e})", flush=True)
            continue
        err = rel_err(out)
        conf = {**base, "kernel": "triton_gemv", "gemv_config": cfg.name,
                "is_default": cfg == default}  # fmt: skip
        timed.append((conf, err, timer(call, sets, rep_ms=args.rep_ms)))
    cublas_us = timed[0][2]
    return [
        (conf, {"median_us": us, "weight_bytes": w_bytes, "floor_us": floor,
                "ratio_to_floor": us / floor, "speedup_vs_cublas": cublas_us / us,
                "max_rel_err_vs_fp32": err})
        for conf, err, us in timed
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """``python bench/bench_gemv.py``: every (shape, M, launch) timed on the GPU, one record
    each, and one line per (shape, M): cuBLAS, our best and default launches, the floor."""
    import argparse
    import json
    import sys
    from pathlib import Path

    from sglang_ext.cli import add_dataclass_args, dataclass_from_args
    from sglang_ext.perf.records import append_jsonl, collect_env, make_record
    from sglang_ext.perf.timing import copy_us
    from sglang_ext.profile.decode_budget import gpu_folder

    p = argparse.ArgumentParser(
        prog="python bench/bench_gemv.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataclass_args(p, GemvBenchArgs)
    args = dataclass_from_args(GemvBenchArgs, p.parse_args(argv))
    if args.table_from:
        records = [json.loads(line) for line in Path(args.table_from).read_text().splitlines()]
        write_gemv_table(records, args.table_from, keep_unmeasured=args.keep_unmeasured)
        return 0
    if not torch.cuda.is_available():
        print("error: the gemv bench needs a CUDA GPU", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    env = collect_env()
    us, nbytes = copy_us()
    copy_gbps = nbytes / us / 1e3
    props = torch.cuda.get_device_properties(0)
    out = args.output_file or f"bench/results/{gpu_folder(props.name)}/gemv.jsonl"
    run = {"copy_gbps": copy_gbps, "sm_count": props.multi_processor_count}
    print(f"copy {copy_gbps:.0f} GB/s, {props.multi_processor_count} SMs; records -> {out}")
    points = [(s, m) for s in args.shapes for m in args.batch_sizes]
    records = []
    for i, (shape, m) in enumerate(points, 1):
        rows = bench_point(shape, m, args, copy_gbps)
        for conf, met in rows:
            records.append(make_record("gemv", {**conf, **run}, met, env=env))
            append_jsonl(out, records[-1])
        (c0, cublas), ours = rows[0], rows[1:]
        if not ours:
            print(f"{shape} M={m}: no launch of ours ran", flush=True)
            continue
        best_c, best = min(ours, key=lambda r: r[1]["median_us"])
        dflt = next((f"{mt['median_us']:.1f} us ({c['gemv_config']})" for c, mt in ours
                     if c["is_default"]), "skipped")  # fmt: skip
        print(
            f"[{i}/{len(points)} {time.perf_counter() - t0:.0f} s] {shape} (N={c0['n']} "
            f"K={c0['k']}) M={m}: cuBLAS {cublas['median_us']:.1f} us, best ours "
            f"{best['median_us']:.1f} us ({best_c['gemv_config']}), default {dflt}, floor "
            f"{cublas['floor_us']:.1f} us; max rel err ours "
            f"{max(r[1]['max_rel_err_vs_fp32'] for r in ours):.1e}, cuBLAS "
            f"{cublas['max_rel_err_vs_fp32']:.1e}",
            flush=True,
        )
    if args.write_table:
        write_gemv_table(records, out, keep_unmeasured=args.keep_unmeasured)
    return 0


def write_gemv_table(records: list[dict], source: str, *, keep_unmeasured: bool = False) -> None:
    """The gemv table from one run's records (for the GPU and Triton version the records
    name), and a summary; ``keep_unmeasured``: the table's buckets at other M stay."""
    import json

    from sglang_ext.kernels import gemv_dispatch as gd
    from sglang_ext.perf.records import one_run

    device, triton_version, sha = one_run(records, source)
    shapes = gd.choose_buckets(records)
    path = gd.table_file(device, triton_version=triton_version)
    notes = {"source": f"{source} (sglang-ext {sha})"}
    if keep_unmeasured and path.is_file():
        ms = sorted({r["config"]["m"] for r in records})
        old = json.loads(path.read_text()).get("source", "?")
        notes["source"] += f", M {ms}; the other M from: {old}"
    gd.write_table(path, device, shapes, triton_version=triton_version, notes=notes,
                   keep_unmeasured=keep_unmeasured)  # fmt: skip
    print(f"gemv table -> {path}")
    for key, buckets in shapes.items():
        print(f"  {key}: " + ", ".join(f"<= {b.m_max}: {b.config} ({b.us} us, cuBLAS "
                                       f"{b.cublas_us})" for b in buckets))  # fmt: skip
