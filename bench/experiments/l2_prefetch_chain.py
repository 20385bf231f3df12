"""(bench/experiments: a one-off measurement kept with its record, bench/results/h200/gpu_call31.log.)

Experiment: does an L2 prefetch of a layer's o_proj + MLP weights on a side stream, during
the latency-bound attention part of the layer, shorten a decode layer chain in a CUDA graph?

Chain per layer (our kernels as served): fused_add_rmsnorm, qkv (gemv_dispatch.linear),
"attention" = torch.cuda._sleep (1 SM spinning, DRAM idle), o (linear), fused_add_rmsnorm,
one-launch MLP.  Weights of L layers rotate (cold in L2).  Graph replays, CUDA events, medians.
"""

import statistics
import sys

import torch
import triton
import triton.language as tl

from sglang_ext.kernels import cuda_onelaunch
from sglang_ext.kernels.gemv import _prefetch_l2
from sglang_ext.kernels.gemv_dispatch import linear
from sglang_ext.kernels.norm import fused_add_rmsnorm
from sglang_ext.perf.timing import time_iters

dev = torch.device("cuda", 0)
torch.manual_seed(0)


@triton.jit
def _pf_line(p, nbytes, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK * 128 + tl.arange(0, BLOCK).to(tl.int64) * 128
    _prefetch_l2(p + tl.minimum(offs, nbytes - 1))


@triton.jit
def _bulk(ptrs):
    tl.inline_asm_elementwise(
        "cp.async.bulk.prefetch.L2.global [$1], 4096; mov.u32 $0, 0;",
        "=r,l",
        [ptrs],
        dtype=tl.int32,
        is_pure=False,
        pack=1,
    )


@triton.jit
def _pf_bulk(p, nbytes, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK * 4096 + tl.arange(0, BLOCK).to(tl.int64) * 4096
    _bulk(p + tl.minimum(offs, nbytes - 4096))


def prefetch(buf: torch.Tensor, kind: str, nbytes: int | None = None) -> None:
    n = buf.numel() if nbytes is None else min(nbytes, buf.numel())
    if kind == "line":
        _pf_line[(triton.cdiv(n, 1024 * 128),)](buf, n, BLOCK=1024, num_warps=4)
    else:
        _pf_bulk[(triton.cdiv(n, 32 * 4096),)](buf, n, BLOCK=32, num_warps=1)


def make_layers(L, H, NQKV, Q, inter):
    layers = []
    for _ in range(L):
        sizes = [H * Q, 2 * inter * H, H * inter]  # o, w13, w2 contiguous: one prefetch range
        flat = torch.randn(sum(sizes), device=dev, dtype=torch.bfloat16) * 0.02
        o, w13, w2 = torch.split(flat, sizes)
        layers.append(
            {
                "qkv": torch.randn(NQKV, H, device=dev, dtype=torch.bfloat16) * 0.02,
                "o": o.view(H, Q),
                "w13": w13.view(2 * inter, H),
                "w2": w2.view(H, inter),
                "flat": flat.view(torch.uint8),
                "mlp_bytes": (sizes[1] + sizes[2]) * 2,
                "n1": torch.ones(H, device=dev, dtype=torch.bfloat16),
                "n2": torch.ones(H, device=dev, dtype=torch.bfloat16),
            }
        )
    return layers


def chain(layers, x, res, attn_cycles, mode, side, events):
    """mode: base | om_line | om_bulk | mlp_bulk | om_bulk_q (also next qkv) | o_budget"""
    q_size = layers[0]["o"].shape[1]
    prev = None
    for li, ly in enumerate(layers):
        if prev is not None:
            torch.cuda.current_stream().wait_event(prev)
            prev = None
        if mode != "nonorm":
            fused_add_rmsnorm(x, res, ly["n1"], 1e-6)
        qkv = linear(x, ly["qkv"])
        if mode not in ("base", "nonorm"):
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                flat = ly["flat"]
                if mode == "mlp_bulk":
                    prefetch(flat[ly["o"].numel() * 2 :], "bulk")
                elif mode.startswith("budget"):
                    prefetch(flat, "bulk", int(mode.split("_")[1]) << 20)
                else:
                    prefetch(flat, "line" if mode == "om_line" else "bulk")
                ev = events[li]
                ev.record(side)
            prev = ev
        torch.cuda._sleep(attn_cycles)
        a = qkv[:, :q_size].contiguous()
        h = linear(a, ly["o"])
        if mode == "om_bulk_q" and li + 1 < len(layers):
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                prefetch(layers[li + 1]["qkv"].view(torch.uint8).view(-1), "bulk")
        if mode != "nonorm":
            fused_add_rmsnorm(h, res, ly["n2"], 1e-6)
        x = cuda_onelaunch.fused_swiglu_mlp_cuda(h, ly["w13"], ly["w2"])
    if prev is not None:
        torch.cuda.current_stream().wait_event(prev)
    if mode != "base" and mode != "nonorm":
        torch.cuda.current_stream().wait_stream(side)
    return x


def graph_ms(fn, iters=40):
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    t = time_iters(g.replay, device=dev, warmup=5, iters=iters)
    del g
    return statistics.median(t) * 1e3


def single_us(fn_of_layer, layers, reps):
    """us per call: a graph of `reps` calls over the layers in turn (cold) or one layer (hot)."""
    return (
        graph_ms(lambda: [fn_of_layer(layers[i % len(layers)]) for i in range(reps)]) / reps * 1e3
    )


def run(name, L, H, NQKV, Q, inter, M):
    layers = make_layers(L, H, NQKV, Q, inter)
    x = torch.randn(M, H, device=dev, dtype=torch.bfloat16)
    res = torch.randn(M, H, device=dev, dtype=torch.bfloat16)
    # sleep calibration
    t_sleep = single_us(lambda ly: torch.cuda._sleep(20000), layers, 50)
    cycles = int(20000 * 11.0 / t_sleep)  # ~11 us of "attention"
    print(
        f"[{name}] M={M} sleep 20000 cycles = {t_sleep:.2f} us -> {cycles} cycles ~ 11 us",
        flush=True,
    )
    a = torch.randn(M, Q, device=dev, dtype=torch.bfloat16)
    hh = torch.randn(M, H, device=dev, dtype=torch.bfloat16)
    for what, f in (
        ("qkv", lambda ly: linear(x, ly["qkv"])),
        ("o", lambda ly: linear(a, ly["o"])),
        ("mlp", lambda ly: cuda_onelaunch.fused_swiglu_mlp_cuda(hh, ly["w13"], ly["w2"])),
    ):
        cold = single_us(f, layers, L)
        hot = single_us(f, layers[:1], L)
        print(f"[{name}] {what}: cold {cold:.2f} us, hot(L2) {hot:.2f} us", flush=True)
    # (call 30 also timed an in-stream prefetch before a 22 us sleep and o_proj: 3.5 us slower)
    side = torch.cuda.Stream()
    events = [torch.cuda.Event() for _ in layers]
    modes = [
        "base",
        "nonorm",
        "om_line",
        "om_bulk",
        "mlp_bulk",
        "om_bulk_q",
        "budget_16",
        "budget_32",
    ]
    for mode in modes:
        t = graph_ms(
            lambda mode=mode: chain(layers, x.clone(), res.clone(), cycles, mode, side, events)
        )
        print(
            f"[{name}] chain {mode}: {t:.3f} ms for {L} layers = {t / L * 1e3:.2f} us/layer",
            flush=True,
        )
    # the attention stand-in's own share
    t = graph_ms(lambda: chain(layers, x.clone(), res.clone(), 1, "base", side, events))
    print(f"[{name}] chain base, no attention sleep: {t / L * 1e3:.2f} us/layer", flush=True)
    torch.cuda.empty_cache()


if __name__ == "__main__":
    print(
        torch.cuda.get_device_name(),
        torch.__version__,
        triton.__version__,
        "L2",
        torch.cuda.get_device_properties(0).L2_cache_size >> 20,
        "MB",
    )
    ms = [int(v) for v in (sys.argv[1:] or ["1"])]
    for M in ms:
        run("30B", 48, 2048, 5120, 4096, 768, M)
        run("235B", 20, 4096, 9216, 8192, 1536, M)
