"""Tuning of ``fused_swiglu_mlp`` launch configs, and the measurement behind the dispatch table.

Each candidate is timed as a CUDA graph of calls over rotating input sets (so launch cost
does not hide the kernel), the fastest per (shape, M) goes into the table that
``fused_mlp_configs.get_config`` reads.  :func:`measure_dispatch` then times the ``cublas``
impl as the layer serves it (``served_torch_mlp``: its two GEMMs through the gemv table), the
tuned Triton v2 and the CUDA one-launch kernel per M, repeated and interleaved, for
``fused_mlp_dispatch.choose_buckets``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
import triton

from sglang_ext.kernels.fused_mlp import fused_swiglu_mlp
from sglang_ext.kernels.fused_mlp_configs import MlpLaunchConfig, max_k_splits, shape_key
from sglang_ext.kernels.fused_mlp_dispatch import Timing
from sglang_ext.perf.timing import time_graph

from .roofline import make_sets

__all__ = ["candidates", "tune_shape", "merge_table", "measure_dispatch", "DISPATCH_MS"]

logger = logging.getLogger(__name__)
TUNE_MS = (1, 8, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
DISPATCH_MS = tuple(2**k for k in range(15))  # 1 .. 16384: the dispatch buckets
_LARGE = [  # (block_m, block_i, block_k, block_n, num_warps, num_stages), k_splits = 1
    (64, 64, 64, 128, 4, 3),
    (128, 64, 64, 128, 8, 3),
    (128, 128, 64, 128, 8, 3),
    (128, 64, 64, 256, 8, 3),
    (64, 128, 64, 128, 4, 4),
    (128, 128, 64, 256, 8, 3),
]


def candidates(
    m: int, hidden: int, inter: int, num_sms: int, *, bounded: bool = False
) -> list[MlpLaunchConfig]:
    """K-split variants (tile sizes x target program counts) for M <= 256, large tiles for
    M >= 256.  ``bounded``: BN in {32, 64} only and the first four large tiles (a time-boxed
    run: 16 + 4 candidates at most)."""
    out: list[MlpLaunchConfig] = []
    if m <= 256:
        bm = min(64, max(16, triton.next_power_of_2(m)))
        for bi in (16, 32):
            for bk in (128, 256) if m <= 64 else (64, 128):
                tiles = triton.cdiv(m, bm) * triton.cdiv(inter, bi)
                for progs in (num_sms, 2 * num_sms):
                    ks = max(
                        1, min(triton.cdiv(hidden, bk), progs // tiles, max_k_splits(bm, inter))
                    )
                    for bn in (32, 64) if bounded else (16, 32, 64):
                        out.append(
                            MlpLaunchConfig(
                                block_m=bm,
                                block_i=bi,
                                block_k=bk,
                                block_n=bn,
                                block_k2=64,
                                k_splits=ks,
                                num_warps=4,
                                num_stages=3,
                            )
                        )
    if m >= 256:
        for bm, bi, bk, bn, w, s in _LARGE[:4] if bounded else _LARGE:
            out.append(
                MlpLaunchConfig(
                    block_m=bm,
                    block_i=bi,
                    block_k=bk,
                    block_n=bn,
                    block_k2=64,
                    num_warps=w,
                    num_stages=s,
                )
            )
    return list(dict.fromkeys(out))  # dedupe, keep order


def tune_shape(
    hidden: int,
    inter: int,
    ms=TUNE_MS,
    dtype=torch.bfloat16,
    rep_ms: float = 15,
    bounded: bool = False,
) -> tuple[dict[int, MlpLaunchConfig], list[dict]]:
    """Best config per M for one shard shape, plus one row per timed candidate."""
    num_sms = torch.cuda.get_device_properties(0).multi_processor_count
    best: dict[int, MlpLaunchConfig] = {}
    rows: list[dict] = []
    for m in ms:
        sets = make_sets(m, hidden, inter, dtype, max_sets=16, min_bytes=100 << 20)
        timed = []
        for cfg in candidates(m, hidden, inter, num_sms, bounded=bounded):

            def call(s, cfg=cfg):
                fused_swiglu_mlp(s.x, s.w13, s.w2, out=s.out, config=cfg)

            try:
                us = time_graph(call, sets, warmup_ms=3, rep_ms=rep_ms)
            except Exception as e:  # a config the compiler rejects (e.g. shared memory)
                logger.warning("H=%d I=%d M=%d %s failed: %s", hidden, inter, m, cfg, e)
                continue
            timed.append((us, cfg))
            rows.append({"H": hidden, "I": inter, "M": m, "us": us, **cfg.to_dict()})
        if timed:
            us, cfg = min(timed, key=lambda t: t[0])
            best[m] = cfg
            logger.info(
                "H=%d I=%d M=%d best %.1f us of %d: %s", hidden, inter, m, us, len(timed), cfg
            )
        del sets
        torch.cuda.empty_cache()
    return best, rows


def merge_table(path: Path, hidden: int, inter: int, best: dict[int, MlpLaunchConfig]) -> None:
    """Merge ``best`` into the JSON table at ``path`` (other shapes and other M kept)."""
    table = json.loads(path.read_text()) if path.is_file() else {}
    entry = table.get(shape_key(hidden, inter), {})
    entry.update({str(m): c.to_dict() for m, c in best.items()})
    table[shape_key(hidden, inter)] = dict(sorted(entry.items(), key=lambda kv: int(kv[0])))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=1) + "\n")


def measure_dispatch(
    hidden: int,
    inter: int,
    ms=DISPATCH_MS,
    dtype=torch.bfloat16,
    *,
    repeats: int = 3,
    rep_ms: float = 10,
) -> tuple[dict[int, dict[str, Timing]], list[dict]]:
    """Graph medians of every dispatchable impl per M, ``repeats`` times, interleaved (impl
    order rotates each repeat, so drift hits all alike).  Triton v2 runs with the launch
    table as the layer would load it now (tune first)."""

    from sglang_ext.kernels import cuda_onelaunch, fused_mlp_configs

    fused_mlp_configs._load_table.cache_clear()  # the table just tuned, not a cached one

    from sglang_ext.layers.single_expert_moe import served_torch_mlp

    def cublas(s):  # the ``cublas`` impl as served: its GEMMs where the gemv table says
        return served_torch_mlp(s.x, s.w13, s.w2)

    cuda_ok = cuda_onelaunch.is_available("cuda")
    timings: dict[int, dict[str, Timing]] = {}
    rows: list[dict] = []
    for m in ms:
        sets = make_sets(m, hidden, inter, dtype, max_sets=16, min_bytes=100 << 20)
        impls = {
            "cublas": cublas,
            "triton_v2": lambda s: fused_swiglu_mlp(s.x, s.w13, s.w2, out=s.out),
        }
        if cuda_ok and cuda_onelaunch.supports(m, hidden, inter, dtype):
            impls["cuda_onelaunch"] = lambda s: cuda_onelaunch.fused_swiglu_mlp_cuda(
                s.x, s.w13, s.w2, out=s.out
            )
        got: dict[str, list[float]] = {k: [] for k in impls}
        names = list(impls)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                try:
                    got[name].append(time_graph(impls[name], sets, warmup_ms=3, rep_ms=rep_ms))
                except Exception as e:  # recorded; an impl that fails is never chosen
                    logger.warning("H=%d I=%d M=%d %s failed: %r", hidden, inter, m, name, e)
                    rows.append(
                        {"H": hidden, "I": inter, "M": m, "impl": name, "error": repr(e)[:300]}
                    )
        timings[m] = {k: Timing(medians_us=tuple(v)) for k, v in got.items() if v}
        for k, t in timings[m].items():
            rows.append(
                {
                    "H": hidden,
                    "I": inter,
                    "M": m,
                    "impl": k,
                    "medians_us": list(t.medians_us),
                    "median_us": t.median_us,
                    "spread_us": t.spread_us,
                }
            )
        del sets
        torch.cuda.empty_cache()
    return timings, rows


def tables_from_records(
    candidates_jsonl: Path, dispatch_jsonl: Path, config_dir: Path
) -> tuple[Path, Path]:
    """Rebuild the launch and dispatch tables from the tuner's records (as a GPU run that
    could not bring its table files back wrote them): the fastest candidate per (shape, M),
    and ``choose_buckets`` over the repeated dispatch medians. Device and Triton version come
    from the records' ``env``; the tables go to ``config_dir/triton_<ver>/``."""
    from sglang_ext.kernels.fused_mlp_dispatch import choose_buckets, write_table

    def rows(path: Path) -> list[dict]:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    cand, disp = rows(candidates_jsonl), rows(dispatch_jsonl)
    if not cand or not disp:
        raise ValueError(f"no records in {candidates_jsonl} or {dispatch_jsonl}")
    env = cand[0]["env"]
    device, tver = env["device"], env["versions"]["triton"]
    version_dir = config_dir / ("triton_" + tver.replace(".", "_"))
    tag = device.replace(" ", "_")
    launch, dispatch = (
        version_dir / f"device_name={tag}.json",
        version_dir / f"dispatch_device_name={tag}.json",
    )
    fields = set(MlpLaunchConfig.__dataclass_fields__)
    best: dict[tuple[int, int], dict[int, tuple[float, MlpLaunchConfig]]] = {}
    for r in cand:
        c = r["config"]
        cfg = MlpLaunchConfig(**{k: v for k, v in c.items() if k in fields})
        per_m = best.setdefault((c["H"], c["I"]), {})
        if c["M"] not in per_m or c["us"] < per_m[c["M"]][0]:
            per_m[c["M"]] = (c["us"], cfg)
    for (h, i), per_m in best.items():
        merge_table(launch, h, i, {m: cfg for m, (_, cfg) in per_m.items()})
    timings: dict[tuple[int, int], dict[int, dict[str, Timing]]] = {}
    for r in disp:
        c, met = r["config"], r["metrics"]
        if "medians_us" not in met:  # an impl that failed is never chosen
            continue
        timings.setdefault((c["H"], c["I"]), {}).setdefault(c["M"], {})[c["impl"]] = Timing(
            medians_us=tuple(met["medians_us"])
        )
    for (h, i), t in sorted(timings.items()):
        write_table(dispatch, device, h, i, choose_buckets(t), triton_version=tver)
    return launch, dispatch
