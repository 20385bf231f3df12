"""The gemv kernel under Triton's CPU interpreter, in one child process.

The interpreter must be on (``TRITON_INTERPRET=1``) before any Triton kernel is decorated,
and other tests in the same pytest process import our kernels first, so the cases run in a
fresh process: :func:`run_worker` starts ``python _gemv_interpret_worker.py <group>`` and
returns the one JSON line it prints, {case: None | failure message}.  Importing this module
loads only the standard library (the tests take :func:`case_ids` from it).

* ``kernel`` (``test_gemv_interpret.py``): :func:`case_ids`, each gemv call against float64;
* ``bench`` (``tests/perf/kernel_bench/test_gemv_bench.py``): the bench's rows with a fake
  timer;
* ``norm`` (``test_norm_gemv_interpret.py``): :func:`norm_case_ids`, each ``norm_gemv`` call
  against float64 (tolerances there).

Inputs are standard normal, so max |ref| ~ 3 sqrt(K) and a product ~ 1: a masked-off tail of
8 products, a K step or a bias missed or counted twice errs by ~1e-2 of max |ref| or more (at
K = 1032; more at smaller K), and a NaN pad read or an unwritten output shows as NaN.  Tolerances, relative to max |ref|:

* float32: 1e-5.  The kernel sums float32 products in float32 (no TF32): a random-walk error
  of about sqrt(K) ulps of the partial sums, ~1e-6 of max |ref| at K = 1032 (these cases: up to
  6.8e-7); 1e-5 leaves a margin and still catches 1e-2.
* float16: 1e-3.  Products of float16 inputs are exact in float32 and the sum errs as above;
  the output's rounding to float16 costs up to half an ulp, 2^-11 = 4.9e-4 of |y| <= max |ref|
  (these cases: up to 3.4e-4).
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parents[1]

TOL = {"float32": 1e-5, "float16": 1e-3}
SHAPES = [(48, 64), (100, 264), (256, 1032)]  # (N, K): N off 32/64 and K off 16 in places
MS = [1, 3, 8, 16, 17, 32]
# tensor-core launches, taken in turn; "default" is default_config's.  BLOCK_N 32/64 do not
# divide N=48 or 100; no BLOCK_K >= 16 divides K=264 or 1032, and 128 exceeds K=64
DOT_CONFIGS = ["n16k64w4s2d1", "n32k128w4s3d1", "n64k32w2s2d1", "default", "n16k256w4s3d1"]
M1_CONFIGS = ["n8k32w2s2d0", "n64k128w4s1d0", "n16k512w4s2d0"]  # CUDA-core: M == 1 only
# split over K (p<S>): K ranges that do not divide K (3 of 264 or 1032), more splits than
# K steps (16 of 64 at BLOCK_K 64: clamped to 1; of 264: 5), both paths
SPLIT_CONFIGS = ["n16k64w4s2d1p4", "n32k128w4s3d1p3", "n16k64w4s1d1p16"]
M1_SPLIT_CONFIGS = ["n8k128w2s2d0p4", "n16k32w4s1d0p2"]


def case_ids() -> list[str]:
    """'<dtype>-m<M>-<N>x<K>-<config>-<bias|nobias>-<dense|padded>'; ``padded``: x, w and
    out are views into NaN-filled buffers with longer rows (x also has NaN rows past M)."""
    ids = []
    for dtype in TOL:
        combos = [(m, nk, None) for m in MS for nk in SHAPES]
        combos += [(1, nk, cfg) for nk in SHAPES for cfg in M1_CONFIGS]
        combos += [
            (m, nk, SPLIT_CONFIGS[(i + j) % 3])
            for i, m in enumerate((3, 17, 32))
            for j, nk in enumerate(SHAPES)
        ]
        combos += [(1, nk, cfg) for nk in SHAPES[1:] for cfg in M1_SPLIT_CONFIGS]  # fmt: skip
        for i, (m, (n, k), cfg) in enumerate(combos):
            cfg = cfg or DOT_CONFIGS[i % len(DOT_CONFIGS)]
            bias = "bias" if i % 2 else "nobias"
            layout = "padded" if i // 2 % 2 else "dense"
            ids.append(f"{dtype}-m{m}-{n}x{k}-{cfg}-{bias}-{layout}")
    return ids


@functools.cache
def run_worker(group: str) -> dict[str, str | None]:
    """Run one group in the child (300 s at most); a crash is reported with its stderr."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), group],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        return {"__crash__": f"worker crashed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _kernel_case(cid: str, seed: int) -> str | None:
    import torch

    from sglang_ext.kernels.gemv import GemvConfig, gemv

    dtype_name, m, nk, cfg_name, bias_s, layout = cid.split("-")
    dtype, m = getattr(torch, dtype_name), int(m[1:])
    n, k = (int(v) for v in nk.split("x"))
    cfg = None if cfg_name == "default" else GemvConfig.parse(cfg_name)
    g = torch.Generator().manual_seed(seed)
    x64 = torch.randn(m, k, generator=g, dtype=torch.float64)
    w64 = torch.randn(n, k, generator=g, dtype=torch.float64)
    b64 = torch.randn(n, generator=g, dtype=torch.float64) if bias_s == "bias" else None
    nan = float("nan")
    if layout == "padded":
        xb = torch.full((m + 5, k + 24), nan, dtype=dtype)
        wb = torch.full((n + 3, k + 40), nan, dtype=dtype)
        ob = torch.full((m, n + 5), nan, dtype=dtype)
        x, w, out = xb[:m, :k], wb[:n, :k], ob[:, :n]
        x.copy_(x64)
        w.copy_(w64)
    else:
        x, w = x64.to(dtype), w64.to(dtype)
        ob = out = torch.full((m, n), nan, dtype=dtype)
    b = None if b64 is None else b64.to(dtype)
    ref = x.double() @ w.double().T + (0 if b is None else b.double())  # the rounded inputs
    got = gemv(x, w, b, out=out, config=cfg)
    if got is not out:
        return "did not return out"
    if out.isnan().any():
        return f"{int(out.isnan().sum())} of {out.numel()} outputs not written (NaN)"
    if not ob[:, n:].isnan().all():
        return "wrote past column N of a row"
    if cfg is not None and cfg.split_k > 1:  # the tickets are reset: a second launch agrees
        from sglang_ext.kernels.tickets import counters

        if counters(x.device, 1, "gemv").any():
            return "a K split's ticket was left non-zero"
        first = out.clone()
        out.fill_(nan)
        gemv(x, w, b, out=out, config=cfg)
        if not torch.equal(out, first):
            return "a second launch gave other outputs (not deterministic, or a stale ticket)"
    err = ((out.double() - ref).abs().max() / ref.abs().max()).item()
    return None if err <= TOL[dtype_name] else f"max rel error {err:.2e} > {TOL[dtype_name]}"


def _run_cases(ids: list[str], case) -> dict[str, str | None]:
    res = {}
    for seed, cid in enumerate(ids):
        try:
            res[cid] = case(cid, seed)
        except Exception as e:  # reported per case, not as a crash of all
            res[cid] = f"{type(e).__name__}: {e}"
    return res


def kernel() -> dict[str, str | None]:
    return _run_cases(case_ids(), _kernel_case)


def _bench_rows(m: int) -> str | None:
    """bench_point on qwen3-30b-o@tp8 ([2048, 512]) in float32: cuBLAS first, then the
    default launch (n16k512w4s3d1 here, listed), then the others; d0 only at M == 1.
    The fake timer replays the call on every weight set, as time_graph does, and answers
    8, 4, 2, 16 us in turn."""
    import torch

    from sglang_ext.perf.kernel_bench.gemv import GemvBenchArgs, bench_point

    args = GemvBenchArgs(shapes=["qwen3-30b-o@tp8"], batch_sizes=[m],
                         configs=["n64k128w4s2d1", "n16k512w4s3d1", "n16k256w2s2d0"])  # fmt: skip
    times = iter([8.0, 4.0, 2.0, 16.0])
    n_sets = []

    def timer(call, sets, rep_ms):
        for s in sets:
            call(s)
        n_sets.append(len(sets))
        return next(times)

    rows = bench_point("qwen3-30b-o@tp8", m, args, 1000.0, device="cpu", dtype=torch.float32,
                       timer=timer, rotate_bytes=1)  # fmt: skip
    got = [(c["kernel"], c["gemv_config"], c["is_default"], c["n"], c["k"], c["m"],
            mt["speedup_vs_cublas"]) for c, mt in rows]  # fmt: skip
    want = [("cublas", None, False, 2048, 512, m, 1.0),
            ("triton_gemv", "n16k512w4s3d1", True, 2048, 512, m, 2.0),
            ("triton_gemv", "n64k128w4s2d1", False, 2048, 512, m, 4.0)]  # fmt: skip
    if m == 1:
        want.append(("triton_gemv", "n16k256w2s2d0", False, 2048, 512, m, 0.5))
    if got != want:
        return f"rows {got}, expected {want}"
    if n_sets != [2] * len(want):
        return f"weight sets per timing {n_sets}, expected two each"
    floor = 2048 * 512 * 4 / 1e12 * 1e6  # float32 weight bytes over 1000 GB/s, in us
    bad = [
        mt
        for _, mt in rows
        if mt["max_rel_err_vs_fp32"] > TOL["float32"]
        or abs(mt["floor_us"] - floor) > 1e-9
        or abs(mt["ratio_to_floor"] * floor - mt["median_us"]) > 1e-9
    ]
    return f"{len(bad)} rows off: {bad[:1]}" if bad else None


def bench() -> dict[str, str | None]:
    return {f"bench_rows-m{m}": _bench_rows(m) for m in (1, 3)}


# norm_gemv: (N, K) of the plain weight (swiglu: 2I rows), M, launch
NORM_TOL = {"float32": 2e-5, "float16": 3e-3}
NORM_SHAPES = [(48, 64), (100, 264), (256, 1032)]
NORM_DOT = ["n16k64w4s2d1", "n32k128w4s3d1", "n16k256w4s3d1"]
NORM_M1 = ["n4k1024w2s2d0", "n8k32w2s2d0", "n2k256w1s1d0"]


def norm_case_ids() -> list[str]:
    """'<dtype>-m<M>-<N>x<K>-<config>-<res|nores>-<plain|swiglu>-<dense|padded>': each
    (M, shape, launch) once per dtype, residual, SwiGLU and layout taken in turn so that
    every combination of the three occurs with both paths (CUDA-core, tensor-core)."""
    ids = []
    for dtype in NORM_TOL:
        combos = [
            (m, nk, NORM_DOT[i % 3])
            for i, (m, nk) in enumerate((m, nk) for m in (1, 3, 17, 32) for nk in NORM_SHAPES)
        ]
        combos += [(1, nk, cfg) for nk in NORM_SHAPES for cfg in NORM_M1]
        for i, (m, (n, k), cfg) in enumerate(combos):
            res = "res" if i % 2 == 0 else "nores"
            swiglu = "swiglu" if i // 2 % 2 == 0 else "plain"
            layout = "padded" if i // 4 % 2 == 0 else "dense"
            ids.append(f"{dtype}-m{m}-{n}x{k}-{cfg}-{res}-{swiglu}-{layout}")
    return ids  # fmt: skip


def _norm_case(cid: str, seed: int) -> str | None:
    """float64 truth from the rounded inputs: s = x + r, y = (s / rms(s) * nw) @ w^T
    (swiglu: silu(gate) * up); the new residual against s rounded, x and r unchanged.
    Tolerances relative to max |truth|: float32 2e-5 (float32 sums of K products; the
    gemv cases err <= 7e-7), float16 3e-3 (the tensor-core operand s * nw rounded to
    float16, 2^-11 each, and the output's rounding, 4.9e-4; silu * up doubles it)."""
    import torch
    import torch.nn.functional as F

    from sglang_ext.kernels.gemv import GemvConfig
    from sglang_ext.kernels.norm_gemv import norm_gemv

    dtype_name, m, nk, cfg_name, res_s, act, layout = cid.split("-")
    dtype, m = getattr(torch, dtype_name), int(m[1:])
    n, k = (int(v) for v in nk.split("x"))
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)

    x, r = rnd(m, k), rnd(m, k) if res_s == "res" else None
    nw, w = (1 + rnd(k, scale=0.2)).to(dtype), rnd(n, k, scale=k**-0.5)
    if layout == "padded":  # rows of x and r inside longer NaN rows
        xb = torch.full((m, k + 24), float("nan"), dtype=dtype)
        xb[:, :k] = x
        x = xb[:, :k]
        if r is not None:
            rb = torch.full((m, k + 8), float("nan"), dtype=dtype)
            rb[:, :k] = r
            r = rb[:, :k]
    x0, r0 = x.clone(), None if r is None else r.clone()
    s = x.double() + (0 if r is None else r.double())
    y = (s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + 1e-6) * nw.double()) @ w.double().T
    swiglu = act == "swiglu"
    if swiglu:
        gate, up = y.chunk(2, dim=-1)
        y = F.silu(gate) * up
    got, new_res = norm_gemv(x, r, nw, 1e-6, w, swiglu=swiglu, config=GemvConfig.parse(cfg_name))
    if not torch.equal(x, x0) or (r is not None and not torch.equal(r, r0)):
        return "modified x or residual in place"
    if got.shape != y.shape or got.dtype != dtype:
        return f"y is {tuple(got.shape)} {got.dtype}, expected {tuple(y.shape)} {dtype}"
    if got.isnan().any():
        return f"{int(got.isnan().sum())} of {got.numel()} outputs NaN"
    if r is None:
        if new_res is not x:
            return "without a residual the new residual must be x itself"
    else:
        rerr = ((new_res.double() - s).abs() / s.abs().clamp_min(1e-3)).max().item()
        if rerr > (1e-3 if dtype == torch.float16 else 1e-6):
            return f"new residual rel error {rerr:.2e}"
    err = ((got.double() - y).abs().max() / y.abs().max()).item()
    tol = NORM_TOL[dtype_name]
    return None if err <= tol else f"max rel error {err:.2e} > {tol}"


def norm() -> dict[str, str | None]:
    return _run_cases(norm_case_ids(), _norm_case)


if __name__ == "__main__":
    os.environ["TRITON_INTERPRET"] = "1"  # before sglang_ext.kernels.gemv decorates its kernel
    from _interpret_patch_once import install  # beside this script, first on sys.path

    install()
    print(json.dumps({"kernel": kernel, "bench": bench, "norm": norm}[sys.argv[1]]()))
