"""GPU microbenchmark of the sgl_kernel stand-in's ops: Triton kernel vs plain-torch reference,
and flashinfer's kernel (``--impls triton torch flashinfer``) where flashinfer has the op.

For each op, token count (1, 32, 4096 by default) and hidden size (2048: the Qwen3-30B-A3B
shape, 4096: 235B-A22B), both implementations are timed in the same run as CUDA-graph
medians (``triton.testing.do_bench`` over graph replays of ``SETS`` calls on rotating
inputs, after a warm-up outside the graph) or eager medians, next to the floor: the bytes
the op must move (each input read once, each output written once) over the device copy
bandwidth measured at the start of the run.  One record per (op, tokens, hidden, impl); each
also carries ``triton_us`` and ``flashinfer_us`` (None where not timed) of the same case, so
one record compares the two.  flashinfer is called through ``compat.flashinfer_ops``, as the
stand-in calls it (rmsnorm, fused_add_rmsnorm, qk_norm, rope, silu_and_mul; it has no
topk_softmax or moe_align_block_size).

Shapes per hidden size (the presets): q/k heads 32/4 (2048) or 64/4 (4096), head_dim 128,
MoE intermediate 768 or 1536 (``silu_and_mul``), the unpruned model's 128 experts, top-8
(``topk_softmax``, ``moe_align_block_size``: these depend on tokens only, timed once per token
count with ``hidden`` 0).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from sglang_ext.perf.timing import copy_us, time_eager, time_graph

logger = logging.getLogger(__name__)

__all__ = ["StandinBenchConfig", "OPS", "IMPLS", "run", "copy_gbps"]

OPS = ("rmsnorm", "fused_add_rmsnorm", "qk_norm", "rope", "silu_and_mul", "topk_softmax",
       "moe_align_block_size")  # fmt: skip
_SHAPES = {2048: dict(hq=32, hk=4, hd=128, inter=768), 4096: dict(hq=64, hk=4, hd=128, inter=1536)}
_EXPERTS, _TOPK, _BLOCK = 128, 8, 64
IMPLS = ("triton", "torch", "flashinfer")


@dataclass(kw_only=True, slots=True)
class StandinBenchConfig:
    """What to time."""

    tokens: list[int] = field(default_factory=lambda: [1, 32, 4096])
    """Token counts (rows)."""
    hidden: list[int] = field(default_factory=lambda: [2048, 4096])
    """Hidden sizes: 2048 (Qwen3-30B-A3B shapes) or 4096 (235B-A22B shapes)."""
    ops: list[str] = field(default_factory=lambda: list(OPS))
    """Ops to time."""
    dtype: str = "bfloat16"
    """Activation dtype."""
    mode: str = field(default="graph", metadata={"choices": ["graph", "eager"]})
    """graph: CUDA-graph replay medians (launch gaps removed); eager: host launches included."""
    rep_ms: float = 30.0
    """do_bench repetition time per measurement."""
    impls: list[str] = field(default_factory=lambda: ["triton", "torch"])
    """Implementations to time: triton, torch, flashinfer (flashinfer needs it installed)."""

    def __post_init__(self):
        bad = [o for o in self.ops if o not in OPS]
        if bad:
            raise ValueError(f"unknown ops {bad}; choose from {list(OPS)}")
        bad_h = [h for h in self.hidden if h not in _SHAPES]
        if bad_h:
            raise ValueError(f"hidden {bad_h} has no preset shape; use {sorted(_SHAPES)}")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"dtype {self.dtype!r}: use bfloat16, float16 or float32")
        bad_i = [i for i in self.impls if i not in IMPLS]
        if bad_i or "torch" not in self.impls:
            raise ValueError(f"impls {self.impls}: choose from {list(IMPLS)}, torch included "
                             "(the baseline of speedup_vs_torch)")  # fmt: skip
        if "flashinfer" in self.impls and self.dtype == "float32":
            raise ValueError("flashinfer's kernels take float16/bfloat16 only: pick a --dtype")


@dataclass(kw_only=True, slots=True)
class _Case:
    op: str
    tokens: int
    hidden: int
    shape: dict
    nbytes: int
    make: Callable[[], dict]  # one set of fresh inputs and outputs
    impls: dict[str, Callable[[dict], object]]


def copy_gbps() -> float:
    """Device copy bandwidth (1 GiB D2D, read + write bytes), GB/s."""
    us, nbytes = copy_us()
    return nbytes / us / 1e3


def _time(call: Callable[[dict], object], sets: list[dict], mode: str, rep_ms: float) -> float:
    """Median us per call: eager, or replays of a CUDA graph of one call per set (the timing
    of the kernel bench, ``perf.timing``)."""
    if mode == "eager":
        return time_eager(call, sets, rep_ms=rep_ms)
    return time_graph(call, sets, rep_ms=rep_ms)


def _cases(cfg: StandinBenchConfig, dev: str = "cuda") -> Iterator[_Case]:
    """Every case of ``cfg``, with the implementations it asks for."""
    for case in _all_cases(cfg, dev):
        case.impls = {i: fn for i, fn in case.impls.items() if i in cfg.impls}
        yield case


def _all_cases(cfg: StandinBenchConfig, dev: str) -> Iterator[_Case]:
    from sglang_ext.compat.sgl_kernel import moe as sk_moe
    from sglang_ext.kernels import (
        activation,
        activation_ref,
        norm,
        norm_ref,
        rope,
        rope_ref,
        topk_ref,
    )
    from sglang_ext.kernels import topk as topk_k

    dt = getattr(torch, cfg.dtype)
    elt = torch.finfo(dt).bits // 8
    from sglang_ext.compat import flashinfer_ops as fi  # flashinfer itself loads at first call

    def rnd(*shape, dtype=dt):
        return torch.randn(*shape, device=dev, dtype=torch.float32).to(dtype)

    e, k = _EXPERTS, _TOPK
    for t in cfg.tokens:
        for h in cfg.hidden:
            s = _SHAPES[h]
            hq, hk, hd, inter = s["hq"], s["hk"], s["hd"], s["inter"]
            w = torch.rand(h, device=dev).to(dt) + 0.5
            wq = torch.rand(hd, device=dev).to(dt) + 0.5
            if "rmsnorm" in cfg.ops:
                yield _Case(op="rmsnorm", tokens=t, hidden=h, shape=dict(d=h),
                            nbytes=(2 * t * h + h) * elt,
                            make=lambda t=t, h=h: dict(x=rnd(t, h), out=rnd(t, h)),
                            impls={"triton": lambda a, w=w: norm.rmsnorm(a["x"], w, 1e-6, out=a["out"]),
                                   "torch": lambda a, w=w: norm_ref.rmsnorm_ref(a["x"], w, 1e-6, out=a["out"]),
                                   "flashinfer": lambda a, w=w: fi.rmsnorm(a["x"], w, 1e-6, a["out"], False)})  # fmt: skip
            if "fused_add_rmsnorm" in cfg.ops:
                yield _Case(op="fused_add_rmsnorm", tokens=t, hidden=h, shape=dict(d=h),
                            nbytes=(4 * t * h + h) * elt,
                            make=lambda t=t, h=h: dict(x=rnd(t, h), r=rnd(t, h)),
                            impls={"triton": lambda a, w=w: norm.fused_add_rmsnorm(a["x"], a["r"], w, 1e-6),
                                   "torch": lambda a, w=w: norm_ref.fused_add_rmsnorm_ref(a["x"], a["r"], w, 1e-6),
                                   "flashinfer": lambda a, w=w: fi.fused_add_rmsnorm(a["x"], a["r"], w, 1e-6, False)})  # fmt: skip
            if "qk_norm" in cfg.ops:  # the q norm of Qwen3MoeAttention: rows of head_dim
                yield _Case(op="qk_norm", tokens=t, hidden=h, shape=dict(rows=t * hq, d=hd),
                            nbytes=(2 * t * hq * hd + hd) * elt,
                            make=lambda t=t, hq=hq, hd=hd: dict(x=rnd(t * hq, hd), out=rnd(t * hq, hd)),
                            impls={"triton": lambda a, w=wq: norm.rmsnorm(a["x"], w, 1e-6, out=a["out"]),
                                   "torch": lambda a, w=wq: norm_ref.rmsnorm_ref(a["x"], w, 1e-6, out=a["out"]),
                                   "flashinfer": lambda a, w=wq: fi.rmsnorm(a["x"], w, 1e-6, a["out"], False)})  # fmt: skip
            if "rope" in cfg.ops:
                cache = torch.randn(40960, hd, device=dev)

                def make_rope(t=t, hq=hq, hk=hk, hd=hd):
                    qkv = rnd(t, (hq + 2 * hk) * hd)
                    q, k, _ = qkv.split([hq * hd, hk * hd, hk * hd], dim=-1)
                    return dict(qkv=qkv, q=q, k=k, pos=torch.randint(0, 40960, (t,), device=dev))

                yield _Case(op="rope", tokens=t, hidden=h, shape=dict(hq=hq, hk=hk, head_dim=hd),
                            nbytes=2 * t * (hq + hk) * hd * elt + t * (hd * 4 + 8),
                            make=make_rope,
                            impls={"triton": lambda a, c=cache, hd=hd: rope.apply_rope_inplace(a["pos"], a["q"], a["k"], hd, c, True),
                                   "torch": lambda a, c=cache, hd=hd: rope_ref.rope_ref(a["pos"], a["q"], a["k"], hd, c, True),
                                   "flashinfer": lambda a, c=cache, hd=hd: fi.apply_rope_inplace(a["pos"], a["q"], a["k"], hd, c, True)})  # fmt: skip
            if "silu_and_mul" in cfg.ops:
                yield _Case(op="silu_and_mul", tokens=t, hidden=h, shape=dict(d=inter),
                            nbytes=3 * t * inter * elt,
                            make=lambda t=t, i=inter: dict(x=rnd(t, 2 * i), out=rnd(t, i)),
                            impls={"triton": lambda a: activation.gated_act(a["x"], a["out"], "silu"),
                                   "torch": lambda a: activation_ref.gated_act_ref(a["x"], a["out"], "silu"),
                                   "flashinfer": lambda a: fi.gated_act(a["x"], a["out"], "silu")})  # fmt: skip
        if "topk_softmax" in cfg.ops:

            def make_topk(t=t):
                return dict(g=rnd(t, e, dtype=torch.float32), w=torch.empty(t, k, device=dev),
                            i=torch.empty(t, k, device=dev, dtype=torch.int32),
                            tei=torch.empty(t, k, device=dev, dtype=torch.int32))  # fmt: skip

            yield _Case(op="topk_softmax", tokens=t, hidden=0, shape=dict(experts=e, topk=k),
                        nbytes=t * e * 4 + 3 * t * k * 4, make=make_topk,
                        impls={"triton": lambda a: topk_k.topk_softmax(a["w"], a["i"], a["tei"], a["g"]),
                               "torch": lambda a: topk_ref.topk_softmax_ref(a["w"], a["i"], a["tei"], a["g"])})  # fmt: skip
        if "moe_align_block_size" in cfg.ops:
            cap = t * k + e * (_BLOCK - 1)

            def make_align(t=t, cap=cap):
                ids = torch.stack([torch.randperm(e, device=dev)[:k] for _ in range(min(t, 64))])
                ids = ids.repeat((t + 63) // 64, 1)[:t].int().contiguous()
                return dict(ids=ids, s=torch.empty(cap, device=dev, dtype=torch.int32),
                            eid=torch.empty((cap + _BLOCK - 1) // _BLOCK, device=dev, dtype=torch.int32),
                            n=torch.empty(1, device=dev, dtype=torch.int32),
                            cs=torch.empty(e + 1, device=dev, dtype=torch.int32))  # fmt: skip

            def align(a, impl):
                if impl == "triton":
                    from sglang_ext.compat.sgl_kernel.moe_align_triton import (
                        moe_align_block_size_fused,
                    )

                    moe_align_block_size_fused(
                        a["ids"], e, _BLOCK, a["s"], a["eid"], a["n"], a["cs"]
                    )
                else:
                    sk_moe._align_torch(a["ids"], e, _BLOCK, a["s"], a["eid"], a["n"], a["cs"])

            yield _Case(op="moe_align_block_size", tokens=t, hidden=0,
                        shape=dict(experts=e, topk=k, block=_BLOCK),
                        nbytes=t * k * 4 + cap * 4 + (cap // _BLOCK + 1) * 4, make=make_align,
                        impls={"triton": lambda a: align(a, "triton"), "torch": lambda a: align(a, "torch")})  # fmt: skip


def run(cfg: StandinBenchConfig, emit: Callable[[dict, dict], None]) -> None:
    """Time every case; ``emit(config, metrics)`` gets one call per (op, tokens, hidden, impl)."""
    if "flashinfer" in cfg.impls:
        from sglang_ext.compat.flashinfer_jit import load

        load()  # a clear error now, not at the first flashinfer case
    bw = copy_gbps()
    logger.info("device copy bandwidth %.0f GB/s", bw)
    for case in _cases(cfg):
        n_sets = max(1, min(16, (64 << 20) // max(1, case.nbytes)))  # rotate past L2 when small
        sets = [case.make() for _ in range(n_sets)]
        floor_us = case.nbytes / (bw * 1e3)
        times = {impl: _time(fn, sets, cfg.mode, cfg.rep_ms) for impl, fn in case.impls.items()}
        for impl, us in times.items():
            conf = dict(op=case.op, tokens=case.tokens, hidden=case.hidden, impl=impl,
                        dtype=cfg.dtype, mode=cfg.mode, shape=case.shape, sets=n_sets)  # fmt: skip
            metrics = dict(median_us=us, floor_us=floor_us, pct_of_floor=100 * floor_us / us,
                           bytes=case.nbytes, copy_gbps=bw,
                           speedup_vs_torch=times["torch"] / us,
                           triton_us=times.get("triton"), flashinfer_us=times.get("flashinfer"),
                           speedup_vs_triton=times["triton"] / us if "triton" in times else None)  # fmt: skip
            emit(conf, metrics)
        del sets


def config_fields() -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(StandinBenchConfig))
