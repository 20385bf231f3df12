"""Shared cases and tolerances for the fused SwiGLU MLP tests (CPU interpreter and GPU)."""

from __future__ import annotations

import torch

from sglang_ext.kernels.fused_mlp_configs import MlpLaunchConfig

# Relative Frobenius error ||out - ref|| / ||ref|| against the float64 reference, per dtype.
# Kernel and reference see the same rounded inputs, so what remains is the kernel's own
# rounding: fp32 accumulation, plus rounding h and out to the working dtype.
REL_TOL = {
    # fp32 operands, "ieee" dots, fp32 accumulation: rounding ~1e-7 per op, K <= a few 1000.
    torch.float32: 1e-5,
    # fp16 has a 11-bit significand (unit roundoff 4.9e-4); h and out are each rounded once,
    # so the RMS relative error lands near 3e-4; 2e-3 leaves room for K-length accumulation.
    torch.float16: 2e-3,
    # bf16 has an 8-bit significand (unit roundoff 3.9e-3); the same two roundings give
    # ~3e-3 RMS; 1e-2 is the usual bf16 GEMM bound (bf16 operands land between 1e-3 and 1e-2).
    torch.bfloat16: 1e-2,
}
# Element-wise: |out - ref| <= ATOL_FRAC * max|ref| + RTOL * |ref|.  Elements near zero only
# have absolute accuracy (cancellation), hence an atol scaled to the output's magnitude.
ELEM_TOL = {
    torch.float32: (1e-5, 1e-4),
    torch.float16: (4e-3, 2e-2),
    torch.bfloat16: (2e-2, 6e-2),
}

# Small tiles so the awkward sizes exercise every mask and every workspace stage.
CPU_CONFIGS = {
    "ksplit3": MlpLaunchConfig(
        block_m=16, block_i=16, block_k=16, block_n=32, block_k2=16, k_splits=3
    ),
    "ksplit_all": MlpLaunchConfig(block_m=16, block_i=64, block_k=16, block_n=128, k_splits=99),
    "no_split": MlpLaunchConfig(block_m=32, block_i=16, block_k=32, block_n=16, block_k2=16),
    "big_tiles": MlpLaunchConfig(block_m=64, block_i=64, block_k=128, block_n=128),
    "auto": None,
    # v4 one launch (phase 1 / phase 2 tiles): K-split 3, K-split per K-block, one split
    "one_ksplit3": MlpLaunchConfig(
        block_m=16, block_i=16, block_k=16, block_n=32, block_k2=16, k_splits=3, one_launch=True
    ),
    "one_ksplit_all": MlpLaunchConfig(
        block_m=16, block_i=64, block_k=16, block_n=128, k_splits=99, one_launch=True
    ),
    "one_nosplit": MlpLaunchConfig(
        block_m=32, block_i=16, block_k=128, block_n=16, block_k2=16, one_launch=True
    ),
}

CPU_HIDDEN, CPU_INTER = 72, 40  # neither a multiple of the 16/32 blocks


# M = 1, 7, 33, 222 as in SGLang's tests.  M = 33 already spans three 16-row tiles with a
# partial last one; M = 222 on the 16-row tiles costs 3 s a call in the interpreter, so it
# runs only on the large-tile configs, where it is cheap and is the many-tile case.
MANY_TILE_CONFIGS = ("big_tiles", "auto")


def case_ids():
    """Interpreter cases: dtype x config x M."""
    for dtype in ("float32", "float16"):
        for cfg in CPU_CONFIGS:
            for m in (1, 7, 33, 222) if cfg in MANY_TILE_CONFIGS else (1, 7, 33):
                yield f"{dtype}-{cfg}-M{m}"


def make_inputs(m: int, hidden: int, inter: int, dtype: torch.dtype, device="cpu", seed=0):
    """Fresh random inputs with realistic scales (weights ~ 1/sqrt(fan_in))."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn(m, hidden, generator=g)
    w13 = torch.randn(2 * inter, hidden, generator=g) / hidden**0.5
    w2 = torch.randn(hidden, inter, generator=g) / inter**0.5
    return tuple(t.to(dtype=dtype, device=device) for t in (x, w13, w2))


def check_against_ref(out: torch.Tensor, x, w13, w2) -> str | None:
    """None when ``out`` matches the float64 reference, else a message naming the failure."""
    from sglang_ext.kernels.fused_mlp_ref import swiglu_mlp_ref

    ref = swiglu_mlp_ref(x.double().cpu(), w13.double().cpu(), w2.double().cpu())
    got = out.double().cpu()
    bad = (~torch.isfinite(got)).sum().item()
    if bad:
        return f"{bad} of {got.numel()} outputs not finite (unwritten or overflow)"
    rel = ((got - ref).norm() / ref.norm()).item()
    if rel > REL_TOL[out.dtype]:
        return f"relative error {rel:.3e} > {REL_TOL[out.dtype]:.0e} for {out.dtype}"
    atol_frac, rtol = ELEM_TOL[out.dtype]
    try:
        torch.testing.assert_close(got, ref, rtol=rtol, atol=atol_frac * ref.abs().max().item())
    except AssertionError as e:
        return f"element-wise: {e}"
    return None
