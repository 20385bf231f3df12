"""Benchmark of the single-expert MLP shard: every implementation vs torch/cuBLAS.

One (shape, M) at a time: build rotating input sets, time each implementation (CUDA graph,
and eager if asked), compare outputs with the torch path, and return records ready for
``sglang_ext.perf.records``.  Implementations (record ``impl`` = name + ``_graph``/``_eager``):

* ``torch``: cuBLAS (the layer's path: two GEMMs around the activation), the reference of every
  ``ratio_to_cublas`` (same run, same mode);
* ``layer_default``: exactly what ``SingleExpertMoE`` runs by default, through the layer's own
  dispatch (``layers.single_expert_moe.swiglu_mlp``); ``default_impl`` names its choice;
* ``fused``: the Triton v2 kernel (tuned table); ``cuda_onelaunch``: the CUDA kernel (M <= 32);
  ``fused_v4``: the experimental one-launch Triton kernel (M <= ``v4_max_m``);
* ``sglang_*``: sglang 0.4.7's ``fused_experts`` at E=1 (``sglang_baseline``).

Every timed record carries ``pct_of_weight_floor``: the weight bytes over the copy bandwidth
measured in the same run, as a percentage of the measured time.  ``bench/bench_fused_mlp.py``
is the CLI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from sglang_ext.kernels.fused_mlp import fused_swiglu_mlp
from sglang_ext.kernels.fused_mlp_configs import get_config
from sglang_ext.perf.timing import time_eager, time_graph

from .roofline import InputSet, make_sets, roofline_floor_us, weight_floor_us

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
    sglang_pieces: bool = False
    """Also time sglang's align, GEMMs and activation separately."""
    modes: list[str] = field(default_factory=lambda: ["graph", "eager"])
    """graph (CUDA-graph replay, launch gaps removed) and/or eager (host cost included)."""
    rep_ms: float = 40
    """do_bench repetition budget per measurement."""
    v4_max_m: int = 16
    """Also time the experimental one-launch Triton v4 (heuristic config) at M <= this."""
    cuda: bool = True
    """Also time the CUDA one-launch kernel (at M <= 32; built on first use)."""

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
        if not self.modes or set(self.modes) - {"graph", "eager"}:
            raise ValueError(f"modes={self.modes}: use graph and/or eager")


def torch_mlp(s: InputSet) -> torch.Tensor:
    """The cuBLAS path: what ``SingleExpertMoE`` runs without a fused kernel (two cuBLAS GEMMs
    around the activation, which is one Triton kernel on CUDA)."""
    from sglang_ext.layers.single_expert_moe import swiglu_mlp

    return swiglu_mlp(s.x, s.w13, s.w2, use_kernel=False)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.float(), b.float()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def _our_impls(
    m: int, hidden: int, inter: int, cfg: MlpBenchConfig, dtype: torch.dtype
) -> tuple[dict[str, tuple[Callable, bool]], dict[str, dict]]:
    from sglang_ext.layers import single_expert_moe as sem

    name = torch.cuda.get_device_name(0)
    nsm = torch.cuda.get_device_properties(0).multi_processor_count
    impls: dict[str, tuple[Callable, bool]] = {
        "torch": (torch_mlp, True),
        "layer_default": (lambda s: sem.swiglu_mlp(s.x, s.w13, s.w2), True),
        "fused": (lambda s: fused_swiglu_mlp(s.x, s.w13, s.w2, out=s.out), True),
    }
    extra = {
        "fused": {"launch": get_config(m, hidden, inter, name, nsm).to_dict()},
        "layer_default": {
            "default_impl": sem.default_impl(m, hidden, inter, dtype, torch.device("cuda", 0))
        },
    }
    from sglang_ext.kernels import cuda_onelaunch

    if cfg.cuda and cuda_onelaunch.supports(m, hidden, inter, dtype):
        try:
            extra["cuda_onelaunch"] = {"launch": cuda_onelaunch.plan(m, hidden, inter, dtype)}
            impls["cuda_onelaunch"] = (
                lambda s: cuda_onelaunch.fused_swiglu_mlp_cuda(s.x, s.w13, s.w2, out=s.out),
                True,
            )
        except Exception as e:  # no nvcc, a failed build: recorded, not fatal
            logger.warning("CUDA one-launch kernel unavailable: %r", e)
    if m <= cfg.v4_max_m:
        from sglang_ext.kernels.experimental import fused_mlp_onelaunch as v4

        c4 = v4.one_launch_config(m, hidden, inter, nsm)
        sync = v4.sync_buffer("cuda")
        impls["fused_v4"] = (
            lambda s: v4.fused_swiglu_mlp_one_launch(
                s.x, s.w13, s.w2, out=s.out, config=c4, sync=sync
            ),
            True,
        )
        extra["fused_v4"] = {"launch": c4.to_dict()}
    return impls, extra


def bench_point(
    model: str, tp: int, m: int, cfg: MlpBenchConfig, ceil: dict, fm=None
) -> list[tuple[dict, dict]]:
    """Time every implementation at one (shape, M); returns (config, metrics) pairs."""
    hidden, inter_full = MODELS[model]
    inter = inter_full // tp
    dtype = getattr(torch, cfg.dtype)
    elt = torch.tensor([], dtype=dtype).element_size()
    sets = make_sets(m, hidden, inter, dtype)
    floor = roofline_floor_us(m, hidden, inter, elt, ceil)
    w_floor = weight_floor_us(hidden, inter, elt, ceil["copy_gbps"])
    base = {
        "model": model,
        "tp": tp,
        "H": hidden,
        "I": inter,
        "M": m,
        "dtype": cfg.dtype,
        "n_sets": len(sets),
    }
    ref = torch_mlp(sets[0])
    impls, extra = _our_impls(m, hidden, inter, cfg, dtype)
    if fm is not None:
        from .sglang_baseline import sglang_impls

        try:
            sg, sg_cfg = sglang_impls(fm, m, sets, pieces=cfg.sglang_pieces)
            impls.update(sg)
            extra.update({k: {"sglang_config": sg_cfg} for k in sg})
        except Exception as e:
            logger.warning("sglang impls unavailable at M=%d: %r", m, e)
    results: dict[str, float] = {}
    out = []
    for impl, (call, graphable) in impls.items():
        err = None
        if not impl.startswith("sglang_") or impl == "sglang_fused_experts":
            sets[0].out.fill_(float("nan"))
            res = call(sets[0])
            returns = impl in ("torch", "layer_default", "sglang_fused_experts")
            err = _rel_err(res if returns else sets[0].out, ref)
        for mode in [md for md in cfg.modes if graphable or md == "eager"]:
            key = f"{impl}_{mode}"
            try:
                timer = time_graph if mode == "graph" else time_eager
                us = timer(call, sets, warmup_ms=5, rep_ms=cfg.rep_ms)
            except Exception as e:
                logger.warning("%s M=%d %s failed: %r", model, m, key, e)
                out.append(({**base, "impl": key, **extra.get(impl, {})}, {"error": repr(e)[:500]}))
                continue
            results[key] = us
            metrics = {
                "median_us": us,
                "floor_us": floor["floor_us"],
                "bound": floor["bound"],
                "pct_of_roofline_floor": 100 * floor["floor_us"] / us,
                "weight_floor_us": w_floor,
                "pct_of_weight_floor": 100 * w_floor / us,
                "tflops": floor["flops"] / us / 1e6,
                "gbps_min_bytes": floor["min_bytes"] / us / 1e3,
                "rel_err_vs_torch": err,
            }
            out.append(({**base, "impl": key, "mode": mode, **extra.get(impl, {})}, metrics))
    for conf, metrics in out:  # each against cuBLAS in the same mode (graph vs graph)
        cublas = results.get(f"torch_{conf.get('mode')}")
        if "median_us" in metrics and cublas:
            metrics["ratio_to_cublas"] = metrics["median_us"] / cublas
            metrics["speedup_vs_cublas"] = cublas / metrics["median_us"]
    del sets
    torch.cuda.empty_cache()
    return out
