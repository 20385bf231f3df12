"""Skinny GEMM for the decode step's linears: ``y = x @ w^T (+ bias)`` for M <= 32 tokens.

At decode the attention projections multiply a few tokens by a weight of millions of
elements, so their time is the weight read.  For these shapes cuBLAS on the H200 runs a
split-K kernel and then a separate split-K reduce kernel (Qwen3-30B's o_proj, N=2048 K=4096,
at M=1: 7.1 + 1.8 us against a 3.9 us weight-read floor).  Here one launch does it all:

* "swap AB": a program owns ``BLOCK_N`` rows of ``w`` (``BLOCK_N`` outputs of every token)
  and walks K in ``BLOCK_K`` steps, loading a [BLOCK_N, BLOCK_K] weight tile (contiguous
  along K: 16-byte loads) and the transposed token tile [BLOCK_K, BLOCK_M], and accumulates
  ``tl.dot(w_tile, x_tile)`` in a float32 [BLOCK_N, BLOCK_M] tile: tensor cores for 16-bit
  inputs, Triton's exact FMA dot for float32 ones (``input_precision="ieee"``: no TF32).  The
  weight is the MMA's long side, so only the token side is padded: BLOCK_M =
  max(16, next_power_of_2(M)) (``tl.dot`` needs every dimension >= 16; rows past M are
  masked, never read).  y is stored transposed back, masked to [M, N].
* ``USE_DOT=False`` (M == 1 only): the same tiles on the CUDA cores, the products summed into
  a float32 [BLOCK_N, BLOCK_K] tile and reduced over K once after the loop (no cross-lane
  reduction inside it); no padded MMA work.  Which path wins at M == 1 is the bench's call
  (``bench/bench_gemv.py``).
* Without a split over K (``split_k`` 1): no workspace, no atomics, and each output's sum
  over K runs in one fixed order (deterministic).  The grid is ``cdiv(N, BLOCK_N)``
  programs, so the block sizes must give the GPU enough of them: :func:`default_config`.
  At M > 1 the tensor-core tiles need 16 rows, which leaves a 2048-row weight 128 programs
  for 132 SMs; ``split_k`` S gives each S programs, one per K range, that store float32
  partial tiles in a workspace and take a ticket (``kernels.tickets``, reset by the last
  to arrive); the last program sums the S partials in split order (still deterministic) and
  stores y: still one launch, no reduce kernel.
* With programmatic dependent launch (``kernels.pdl``, Hopper+), a program first asks L2
  for its whole weight slice (``prefetch.global.L2``, one per 128-byte line; the weight is
  no kernel's output) and only then waits for the kernel before it: the weight read
  overlaps that kernel's tail and this launch.
* K and N need not be multiples of the blocks (masked); K must be a multiple of 8 (16-byte
  rows for 16-bit types).  No host syncs and no allocation but ``out`` when it is not given
  and the split's workspace: capturable in a CUDA graph.

The plain-torch reference is ``gemv_ref``; above ``MAX_M`` tokens use ``F.linear``.

Measured on the H200 (``bench/results/h200/gemv.jsonl``, graph medians, cuBLAS in the same
run): the best swept launch beats cuBLAS by 2-10% at M <= 16 (Qwen3-235B qkv 26.3 -> 24.0 us,
o_proj 24.2 -> 21.8 us at M=1; floors 17.8 and 15.8 us), loses at M = 32, and
:func:`default_config`'s pick is slower than cuBLAS on most shapes.  So serving runs this
kernel only through ``gemv_dispatch``: a measured per-device table of (N, K, M) -> launch or
cuBLAS, written by ``bench/bench_gemv.py --write-table``.  With the split over K (call 41,
``gemv_call41.jsonl``) the 30B o_proj at M 2-32 takes 8.9-9.5 us against cuBLAS's 9.4-10.3
(floor 4.0) and the 235B gate/up at M 2-4 and 32 11.2-11.9 against 12.7-12.9 (floor 5.9); in
the model the 30B graphs at batch 8 / 32 took 2.33 / 2.89 ms against 2.40 / 2.96 with the
tables before it (``gpu_call42.log``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from triton.runtime import JITFunction

from . import pdl
from .tickets import counters

__all__ = [
    "DEFAULT_CONFIG",
    "MAX_M",
    "GemvConfig",
    "check_device",
    "check_operands",
    "default_config",
    "gemv",
    "line_elems",
    "prefetch_rows_l2",
]

MAX_M = 32  # tokens per call; beyond this the weight is no longer the whole cost
MAX_SPLIT_K = 16  # K splits per launch (each a float32 partial tile in the workspace)
_DTYPES = (torch.bfloat16, torch.float16, torch.float32)
_SMS = 132  # H100 / H200 SXM: the heuristic sizes the grid for this many SMs
_STAGE_ELEMS = 16384  # weight + token tile of one pipeline stage: 32 KiB of 16-bit elements


@triton.jit
def _prefetch_l2(ptrs):
    """Ask L2 for the 128-byte line of each pointer (no registers written, no wait)."""
    tl.inline_asm_elementwise(
        "prefetch.global.L2 [$1]; mov.u32 $0, 0;", "=r,l", [ptrs], dtype=tl.int32,
        is_pure=False, pack=1,
    )  # fmt: skip


@triton.jit
def prefetch_rows_l2(w_ptr, rn, N, K, sw_n, BLOCK_K: tl.constexpr, LINE: tl.constexpr):
    """Ask L2 for weight rows ``rn`` (clamped to N) over all of K, one prefetch per 128-byte
    line (``LINE`` elements; 0: none).  For data no kernel of the step writes, before
    ``pdl.wait_then_release``."""
    if LINE > 0:
        rl = tl.arange(0, BLOCK_K // LINE) * LINE  # one pointer per 128-byte line
        w_rows = w_ptr + tl.minimum(rn, N - 1).to(tl.int64)[:, None] * sw_n
        for k0 in range(0, K, BLOCK_K):
            _prefetch_l2(w_rows + tl.minimum(k0 + rl, K - 1)[None, :])


@triton.jit
def reduce_splits(part, offs, ws_ptr, ticket_ptr, tile, split, TILE: tl.constexpr,
                  SPLIT_K: tl.constexpr):  # fmt: skip
    """Split-K, in the launch: store this program's float32 partial ``part`` (``offs``: its
    elements' places in a tile of ``TILE``) in the workspace, take a ticket of ``tile``, and
    if it is the last of the ``SPLIT_K`` to arrive, reset the ticket and return the sum of
    all the partials in split order (deterministic) with True; else zeros and False."""
    base = ws_ptr + tile.to(tl.int64) * (SPLIT_K * TILE)
    tl.store(base + split * TILE + offs, part)
    tl.debug_barrier()  # every thread's partial stored before the ticket
    last = tl.atomic_add(ticket_ptr + tile, 1, sem="acq_rel") == SPLIT_K - 1
    total = tl.zeros(part.shape, dtype=tl.float32)
    if last:
        tl.atomic_xchg(ticket_ptr + tile, 0)  # ready for the next launch
        for s in tl.static_range(SPLIT_K):
            total += tl.load(base + s * TILE + offs, cache_modifier=".cg")
    return total, last


@triton.jit(do_not_specialize=["M"])  # one compile for every M of a BLOCK_M
def _gemv_kernel(
    x_ptr,
    w_ptr,
    b_ptr,
    y_ptr,
    ws_ptr,
    ticket_ptr,
    M,
    N,
    K,
    sx_m,
    sw_n,
    sy_m,
    HAS_BIAS: tl.constexpr,
    USE_DOT: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    SPLIT_K: tl.constexpr,
    PDL: tl.constexpr,
    LINE: tl.constexpr,
):
    tile = tl.program_id(0)
    split = tl.program_id(1)
    rn = tile * BLOCK_N + tl.arange(0, BLOCK_N)  # [BLOCK_N] rows of w
    rk = tl.arange(0, BLOCK_K)
    nmask = rn < N
    # this program's K range: whole BLOCK_K steps.  Without a split, literally 0 and K: the
    # runtime bounds of a split made the M == 1 launches ~2 us slower in the model (call 41)
    if SPLIT_K == 1:
        k_lo = 0
        k_hi = K
    else:
        k_per = tl.cdiv(tl.cdiv(K, SPLIT_K), BLOCK_K) * BLOCK_K
        k_lo = split * k_per
        k_hi = tl.minimum(K, k_lo + k_per)
    if PDL:  # the weight is no kernel's output: stream it into L2 while the previous runs
        prefetch_rows_l2(w_ptr + k_lo, rn, N, k_hi - k_lo, sw_n, BLOCK_K, LINE)
        pdl.wait_then_release()  # before any read of x or write of y
    w_ptrs = w_ptr + rn.to(tl.int64)[:, None] * sw_n + (k_lo + rk)[None, :]  # [BLOCK_N, BLOCK_K]
    if HAS_BIAS:
        bias = tl.load(b_ptr + rn, mask=nmask, other=0.0).to(tl.float32)
    if USE_DOT:
        rm = tl.arange(0, BLOCK_M)
        mmask = rm < M
        x_ptrs = x_ptr + rm[None, :] * sx_m + (k_lo + rk)[:, None]  # x^T tile [BLOCK_K, BLOCK_M]
        acc = tl.zeros((BLOCK_N, BLOCK_M), dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            kmask = rk < k_hi - k0
            w = tl.load(w_ptrs, mask=nmask[:, None] & kmask[None, :], other=0.0)
            xt = tl.load(x_ptrs, mask=kmask[:, None] & mmask[None, :], other=0.0)
            acc = tl.dot(w, xt, acc, input_precision="ieee")  # float32 inputs: no TF32
            w_ptrs += BLOCK_K
            x_ptrs += BLOCK_K
        ymask = nmask[:, None] & mmask[None, :]
        if SPLIT_K > 1:  # the last split's program stores the sum
            offs = tl.arange(0, BLOCK_N)[:, None] * BLOCK_M + rm[None, :]
            acc, last = reduce_splits(acc, offs, ws_ptr, ticket_ptr, tile, split,
                                      BLOCK_N * BLOCK_M, SPLIT_K)  # fmt: skip
            ymask = ymask & last
        if HAS_BIAS:
            acc += bias[:, None]
        y_ptrs = y_ptr + rm[None, :] * sy_m + rn[:, None]  # y^T tile [BLOCK_N, BLOCK_M]
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=ymask)
    else:
        x_ptrs = x_ptr + k_lo + rk
        acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
        for k0 in range(k_lo, k_hi, BLOCK_K):
            kmask = rk < k_hi - k0
            w = tl.load(w_ptrs, mask=nmask[:, None] & kmask[None, :], other=0.0)
            x = tl.load(x_ptrs, mask=kmask, other=0.0)
            acc += w.to(tl.float32) * x.to(tl.float32)[None, :]
            w_ptrs += BLOCK_K
            x_ptrs += BLOCK_K
        y = tl.sum(acc, axis=1)
        ymask = nmask
        if SPLIT_K > 1:
            y, last = reduce_splits(y, tl.arange(0, BLOCK_N), ws_ptr, ticket_ptr, tile, split,
                                    BLOCK_N, SPLIT_K)  # fmt: skip
            ymask = ymask & last
        if HAS_BIAS:
            y += bias
        tl.store(y_ptr + rn, y.to(y_ptr.dtype.element_ty), mask=ymask)


_COMPILED = isinstance(_gemv_kernel, JITFunction)  # False under TRITON_INTERPRET=1 (CPU)


def _pow2(v: int) -> bool:
    return v >= 1 and v & (v - 1) == 0


@dataclass(frozen=True, slots=True)
class GemvConfig:
    """Launch parameters of the gemv kernel."""

    block_n: int
    """Rows of w (outputs) per program; a power of two, >= 16 with ``use_dot``."""
    block_k: int
    """K elements per loop step; a power of two >= 16."""
    num_warps: int = 4
    """A power of two, 1..16."""
    num_stages: int = 3
    """Software-pipeline depth (>= 1)."""
    use_dot: bool = True
    """Tensor-core ``tl.dot`` (any M) or CUDA-core products (M == 1 only)."""
    split_k: int = 1
    """Programs per ``block_n`` rows, each over one K range (whole ``block_k`` steps); the
    last of them to finish sums their float32 partials in split order (``reduce_splits``).
    1: no split."""

    def __post_init__(self) -> None:
        if not _pow2(self.block_n) or (self.use_dot and self.block_n < 16):
            low = 16 if self.use_dot else 1
            raise ValueError(f"block_n={self.block_n}: a power of two >= {low}")
        if not _pow2(self.block_k) or self.block_k < 16:
            raise ValueError(f"block_k={self.block_k}: a power of two >= 16")
        if not _pow2(self.num_warps) or self.num_warps > 16:
            raise ValueError(f"num_warps={self.num_warps}: a power of two, 1..16")
        if self.num_stages < 1:
            raise ValueError(f"num_stages={self.num_stages}: >= 1")
        if not 1 <= self.split_k <= MAX_SPLIT_K:
            raise ValueError(f"split_k={self.split_k}: 1..{MAX_SPLIT_K}")

    @property
    def name(self) -> str:
        n, k, w, s = self.block_n, self.block_k, self.num_warps, self.num_stages
        split = f"p{self.split_k}" if self.split_k > 1 else ""
        return f"n{n}k{k}w{w}s{s}d{int(self.use_dot)}{split}"

    @classmethod
    def parse(cls, text: str) -> GemvConfig:
        """'n64k256w4s3d1' -> GemvConfig(64, 256, 4, 3, True); 'n16k256w4s3d1p4' the same
        split over K in 4; a clear error otherwise."""
        m = re.fullmatch(r"n(\d+)k(\d+)w(\d+)s(\d+)d([01])(?:p(\d+))?", text)
        if not m:
            raise ValueError(
                f"gemv config {text!r}: write n<BLOCK_N>k<BLOCK_K>w<num_warps>s<num_stages>"
                f"d<use_dot 0|1>[p<split_k>], e.g. n16k512w4s3d1 or n16k256w4s3d1p4"
            )
        n, k, w, s, d = (int(g) for g in m.groups()[:5])
        return cls(n, k, w, s, bool(d), int(m.group(6) or 1))


def default_config(m: int, n: int, k: int) -> GemvConfig:
    """A launch for M tokens of an [N, K] weight: a heuristic for H100/H200-class GPUs (132
    SMs, 16-bit weights), to be replaced by a table measured with ``bench/bench_gemv.py``.

    * ``block_n``: without a split over K the grid is cdiv(N, block_n) programs, and a
      bandwidth-bound kernel wants every SM streaming, two programs on each to hide the
      latency of the other's loads: 16 rows, doubled (up to 64) only while that still leaves
      at least 2 x 132 programs.  That gives 16 rows to Qwen3-30B's qkv and o_proj (320 and
      128 programs) and 235B's o_proj (256), and 32 to 235B's qkv (288).
    * ``block_k``: a pipeline stage (weight tile + token tile) of at most 16K elements (32
      KiB of 16-bit data), so three stages (two loads in flight) leave shared memory for
      two programs per SM; 512 at 16 rows and M <= 16.  No wider than K needs.
    * tensor cores at every M (their loads are the ones Triton pipelines); 4 warps.
    """
    block_n = 16
    while block_n < 64 and triton.cdiv(n, 2 * block_n) >= 2 * _SMS:
        block_n *= 2
    block_m = max(16, triton.next_power_of_2(m))
    block_k = 1 << ((_STAGE_ELEMS // (block_n + block_m)).bit_length() - 1)  # a power of two
    block_k = max(16, min(block_k, triton.next_power_of_2(k)))
    return GemvConfig(block_n, block_k, num_warps=4, num_stages=3, use_dot=True)


DEFAULT_CONFIG = default_config(1, 5120, 2048)
"""The heuristic's launch for one token of Qwen3-30B's qkv projection (n16k512w4s3d1)."""


def check_operands(
    op: str,
    x: torch.Tensor,
    w: torch.Tensor,
    others: list[tuple[str, torch.Tensor]],
    config: GemvConfig | None,
    use: str = "F.linear",
) -> None:
    """The shared refusals of a skinny GEMM ``op`` over x [M, K] and w [N, K] (and
    ``others``, of x's dtype and device), before any launch (metadata only: no host sync);
    the caller checks its own arguments, then :func:`check_device`."""
    if x.dim() != 2 or w.dim() != 2:
        raise ValueError(
            f"{op}: x must be [M, K] and w [N, K]; got {tuple(x.shape)} and {tuple(w.shape)}"
        )
    m, k = x.shape
    if x.dtype not in _DTYPES:
        raise ValueError(f"{op}: x is {x.dtype}; supported: bfloat16, float16, float32")
    for label, t in [("w", w), *others]:
        if t.dtype != x.dtype:
            raise ValueError(f"{op}: {label} is {t.dtype}, x is {x.dtype}")
        if t.device != x.device:
            raise ValueError(f"{op}: {label} is on {t.device}, x on {x.device}")
    if w.shape[1] != k:
        raise ValueError(f"{op}: x has K={k} columns, w has {w.shape[1]}")
    if m > MAX_M:
        raise ValueError(f"{op}: M={m} tokens > {MAX_M}: use {use}")
    if k % 8:
        raise ValueError(f"{op}: K={k} must be a multiple of 8 (16-byte rows)")
    if x.stride(1) != 1 or w.stride(1) != 1:
        raise ValueError(
            f"{op}: x and w need contiguous rows (stride(1) == 1); got x stride {x.stride()}, "
            f"w stride {w.stride()}"
        )
    if config is not None and not config.use_dot and m != 1:
        raise ValueError(f"{op}: config {config.name} (use_dot=0) needs M == 1, got M={m}")


def check_device(op: str, x: torch.Tensor, compiled: bool) -> None:
    """A compiled kernel (not Triton's interpreter) takes CUDA tensors only."""
    if compiled and x.device.type != "cuda":
        raise ValueError(f"{op}: needs CUDA tensors (got {x.device}; TRITON_INTERPRET=1 on CPU)")


def _check(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    out: torch.Tensor | None,
    config: GemvConfig | None,
) -> None:
    named = [(s, t) for s, t in (("bias", bias), ("out", out)) if t is not None]
    check_operands("gemv", x, w, named, config)
    m, n = x.shape[0], w.shape[0]
    if bias is not None and (bias.shape != (n,) or bias.stride(0) != 1):
        raise ValueError(
            f"gemv: bias must be a contiguous [{n}]; got {tuple(bias.shape)}, {bias.stride()}"
        )
    if out is not None and (out.shape != (m, n) or out.stride(1) != 1):
        raise ValueError(
            f"gemv: out must be [{m}, {n}] with stride(1) == 1; got {tuple(out.shape)} "
            f"stride {out.stride()}"
        )
    check_device("gemv", x, _COMPILED)


def gemv(
    x: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    out: torch.Tensor | None = None,
    config: GemvConfig | None = None,
) -> torch.Tensor:
    """``out = x @ w^T (+ bias)`` with float32 accumulation, rounded once to x's dtype.

    x [M, K] (M <= 32; any row stride), w [N, K] (any row stride), bias [N] or None, out
    [M, N] (any row stride) or None (allocated); all of one dtype (bfloat16, float16 or
    float32) and device.  ``config`` None: :func:`default_config`.  Returns out."""
    _check(x, w, bias, out, config)
    (m, k), n = x.shape, w.shape[0]
    config = config or default_config(m, n, k)
    if out is None:
        out = torch.empty(m, n, dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return out
    tiles, block_m = triton.cdiv(n, config.block_n), max(16, triton.next_power_of_2(m))
    split = min(config.split_k, triton.cdiv(k, config.block_k))  # no program without K
    ticket = counters(x.device, tiles, "gemv") if split > 1 else None
    if ticket is None:  # no split, or a graph capture before the first split launch
        split, ticket = 1, out
    ws = out  # split > 1: one float32 partial tile per program
    if split > 1:
        tile_elems = config.block_n * (block_m if config.use_dot else 1)
        ws = torch.empty(tiles * split * tile_elems, dtype=torch.float32, device=x.device)
    _gemv_kernel[(tiles, split)](
        x, w, bias if bias is not None else w, out, ws, ticket, m, n, k, x.stride(0),
        w.stride(0), out.stride(0), HAS_BIAS=bias is not None, USE_DOT=config.use_dot,
        BLOCK_M=block_m, BLOCK_N=config.block_n, BLOCK_K=config.block_k, SPLIT_K=split,
        LINE=line_elems(config, w), num_warps=config.num_warps, num_stages=config.num_stages,
        **pdl.launch_kwargs(x),
    )  # fmt: skip
    return out


def line_elems(config: GemvConfig, w: torch.Tensor) -> int:
    """Elements of ``w`` per 128-byte line when a K step spans whole lines, else 0 (no
    prefetch)."""
    line = 128 // w.element_size()
    return line if config.block_k >= line else 0
