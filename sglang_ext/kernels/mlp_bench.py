"""Benchmark of the single-expert MLP shard: this kernel vs torch/cuBLAS vs SGLang fused_moe.

One (shape, M) at a time: build rotating input sets, time each implementation (eager and
CUDA graph), compare outputs with the torch path, and return records ready for
``sglang_ext.perf.records``.  ``bench/bench_fused_mlp.py`` is the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

from .fused_mlp import fused_swiglu_mlp
from .fused_mlp_configs import get_config
from .fused_mlp_onelaunch import one_launch_config
from .mlp_timing import InputSet, make_sets, roofline_floor_us, time_eager, time_graph

__all__ = ["MlpBenchConfig", "MODELS", "bench_point", "torch_mlp"]

logger = logging.getLogger(__name__)
MODELS = {"qwen3-30b-a3b": (2048, 768), "qwen3-235b-a22b": (4096, 1536)}  # (H, I_full)


@dataclass(kw_only=True, slots=True)
class MlpBenchConfig:
    """What the fused-MLP bench runs."""

    models: list[str] = field(default_factory=lambda: list(MODELS))
    """Expert shapes, keys of MODELS."""
    tps: list[int] = field(default_factory=lambda: [1, 8])
    """TP degrees: the shard has I = I_full / tp."""
    ms: list[int] = field(default_factory=lambda: [2**k for k in range(15)])
    """Token counts M (1 .. 16384)."""
    dtype: str = "bfloat16"
    """bfloat16 or float16."""
    sglang: bool = True
    """Also time SGLang 0.4.7's fused_experts at E=1, top-1 (needs sglang importable)."""
    rep_ms: float = 40
    """do_bench repetition budget per measurement."""
    v4_max_m: int = 64
    """Also time the experimental one-launch v4 (heuristic config and variants) at M <= this."""

    def __post_init__(self) -> None:
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"unknown models {bad}; choose from {list(MODELS)}")
        for tp in self.tps:
            for m in self.models:
                if MODELS[m][1] % tp:
                    raise ValueError(f"I_full={MODELS[m][1]} of {m} is not divisible by tp={tp}")
        if self.dtype not in ("bfloat16", "float16"):
            raise ValueError(f"dtype={self.dtype!r}: use bfloat16 or float16")


def torch_mlp(s: InputSet) -> torch.Tensor:
    """The cuBLAS path: F.linear + silu*mul + F.linear (what the layer does without Triton)."""
    inter = s.w2.shape[1]
    gu = F.linear(s.x, s.w13)
    return F.linear(F.silu(gu[:, :inter]) * gu[:, inter:], s.w2)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _sglang_impls(fm, m: int, sets: list[InputSet]) -> dict[str, tuple[Callable, bool]]:
    """SGLang fused_experts at E=1 top-1, whole and in pieces: name -> (call, graphable)."""
    import triton.language as tl

    s0 = sets[0]
    dev, dtype = s0.x.device, s0.x.dtype
    hidden, inter = s0.w2.shape
    topk_w = torch.ones(m, 1, device=dev, dtype=torch.float32)
    topk_ids = torch.zeros(m, 1, device=dev, dtype=torch.int32)
    w1s = {id(s): s.w13[None] for s in sets}  # [E=1, 2I, H]
    w2s = {id(s): s.w2[None] for s in sets}  # [E=1, H, I]
    dtype_str = None  # unquantized
    config = fm.try_get_optimal_moe_config(w1s[id(s0)].shape, w2s[id(s0)].shape, 1, dtype_str, m)
    sorted_ids, expert_ids, ntp = fm.moe_align_block_size(topk_ids, config["BLOCK_SIZE_M"], 1)
    cache1 = torch.empty(m, 1, 2 * inter, device=dev, dtype=dtype)
    cache2 = torch.empty(m, inter, device=dev, dtype=dtype)
    ctype = tl.bfloat16 if dtype == torch.bfloat16 else tl.float16
    quant = dict(use_fp8_w8a8=False, use_int8_w8a8=False, use_int8_w8a16=False,
                 use_int4_w4a16=False, per_channel_quant=False, block_shape=None)

    def gemm1(s):
        fm.invoke_fused_moe_kernel(s.x, w1s[id(s)], cache1, None, None, None, topk_w, topk_ids,
                                   sorted_ids, expert_ids, ntp, False, 1, config,
                                   compute_type=ctype, **quant)

    def act(s):
        fm.silu_and_mul(cache1.view(-1, 2 * inter), cache2)

    def gemm2(s):
        fm.invoke_fused_moe_kernel(cache2, w2s[id(s)], s.out[None], None, None, None, topk_w,
                                   topk_ids, sorted_ids, expert_ids, ntp, True, 1, config,
                                   compute_type=ctype, **quant)

    return {
        "sglang_fused_experts": (lambda s: fm.fused_experts(s.x, w1s[id(s)], w2s[id(s)], topk_w,
                                                            topk_ids, inplace=False), True),
        "sglang_config_lookup": (lambda s: fm.try_get_optimal_moe_config(
            w1s[id(s)].shape, w2s[id(s)].shape, 1, dtype_str, m), False),
        "sglang_moe_align": (lambda s: fm.moe_align_block_size(
            topk_ids, config["BLOCK_SIZE_M"], 1), True),
        "sglang_gemm1": (gemm1, True),
        "sglang_silu_and_mul": (act, True),
        "sglang_gemm2": (gemm2, True),
        "sglang_gemms": (lambda s: (gemm1(s), act(s), gemm2(s)), True),
    }, config


def bench_point(model: str, tp: int, m: int, cfg: MlpBenchConfig, ceil: dict,
                fm=None) -> list[tuple[dict, dict]]:
    """Time every implementation at one (shape, M); returns (config, metrics) pairs."""
    hidden, inter_full = MODELS[model]
    inter = inter_full // tp
    dtype = getattr(torch, cfg.dtype)
    elt = torch.tensor([], dtype=dtype).element_size()
    sets = make_sets(m, hidden, inter, dtype)
    floor = roofline_floor_us(m, hidden, inter, elt, ceil)
    base = {"model": model, "tp": tp, "H": hidden, "I": inter, "M": m, "dtype": cfg.dtype,
            "n_sets": len(sets)}
    ref = torch_mlp(sets[0])
    name, nsm = torch.cuda.get_device_name(0), torch.cuda.get_device_properties(0).multi_processor_count
    launch = get_config(m, hidden, inter, name, nsm).to_dict()

    def fused(s):
        return fused_swiglu_mlp(s.x, s.w13, s.w2, out=s.out)

    impls: dict[str, tuple[Callable, bool]] = {"fused": (fused, True), "torch": (torch_mlp, True)}
    extra = {"fused": {"launch": launch}}
    if m <= cfg.v4_max_m:  # v4 one launch: heuristic config and two variants
        v4 = one_launch_config(m, hidden, inter, nsm)
        for tag, c in {"": v4, "_bn128": replace(v4, block_n=128),
                       "_bk256": replace(v4, block_k=256)}.items():
            impls[f"fused_v4{tag}"] = (
                lambda s, c=c: fused_swiglu_mlp(s.x, s.w13, s.w2, out=s.out, config=c), True)
            extra[f"fused_v4{tag}"] = {"launch": c.to_dict()}
    if fm is not None:
        try:
            sg, sg_cfg = _sglang_impls(fm, m, sets)
            impls.update(sg)
            for k in sg:
                extra[k] = {"sglang_config": sg_cfg}
        except Exception as e:
            logger.warning("sglang impls unavailable at M=%d: %r", m, e)
    results: dict[str, float] = {}
    out = []
    for impl, (call, graphable) in impls.items():
        err = None
        if impl in ("torch", "sglang_fused_experts") or impl.startswith("fused"):
            res = call(sets[0])
            err = _rel_err(sets[0].out if impl.startswith("fused") else res, ref)
        for mode in ("eager", "graph") if graphable else ("eager",):
            key = f"{impl}_{mode}"
            try:
                timer = time_graph if mode == "graph" else time_eager
                us = timer(call, sets, warmup_ms=5, rep_ms=cfg.rep_ms)
            except Exception as e:
                logger.warning("%s M=%d %s failed: %r", model, m, key, e)
                out.append(({**base, "impl": key, **extra.get(impl, {})}, {"error": repr(e)[:500]}))
                continue
            results[key] = us
            metrics = {"median_us": us, "floor_us": floor["floor_us"], "bound": floor["bound"],
                       "pct_of_roofline_floor": 100 * floor["floor_us"] / us,
                       "tflops": floor["flops"] / us / 1e6,
                       "gbps_min_bytes": floor["min_bytes"] / us / 1e3,
                       "rel_err_vs_torch": err}
            out.append(({**base, "impl": key, "mode": mode, **extra.get(impl, {})}, metrics))
    for conf, metrics in out:  # each against cuBLAS in the same mode (graph vs graph)
        cublas = results.get(f"torch_{conf.get('mode')}")
        if "median_us" in metrics and cublas:
            metrics["ratio_to_cublas"] = metrics["median_us"] / cublas
    del sets
    torch.cuda.empty_cache()
    return out
