"""A decode step's small bookkeeping updates in one launch each (patch 0025).

Before each decode step sglang 0.4.7 runs a handful of tiny tensor ops on the batch's
bookkeeping tensors, each a kernel launch and its Python on the host while the GPU waits
(the host part of the step, ``bench/decode_budget.py``):

* ``ScheduleBatch.prepare_for_decode``: a clone of ``seq_lens``, ``seq_lens + 1``, an int32
  cast of the new KV slots and an ``index_put`` into ``req_to_token`` (the costliest on the
  host): four launches.  :func:`advance_decode` is one.
* ``CudaGraphRunner.replay_prepare``: where the batch is padded to a captured size a fill of
  ``seq_lens`` and a zero of ``out_cache_loc``, then five copies of the batch into the
  graph's static inputs: up to seven launches.  :func:`copy_graph_inputs` is one.

Both move integers only, with the same casts as sglang's ops (their references are
``decode_inputs_ref``, sglang's ops verbatim), so the results are bit-identical.  Serving
calls them through ``sglang_ext.serving.decode_inputs``, which says where they apply.

On the H200 (``bench/results/h200/gpu_call40.log``, the 30B one-expert decode budget, same
call) the step took 1.99 / 2.80 / 3.67 ms at batch 1 / 8 / 32 with them and 1.97 / 2.90 /
3.58 ms without: no change beyond the noise, since a Triton launch's Python costs about what
the torch ops it replaces cost there.  So both kernels now launch through
:class:`~sglang_ext.kernels.fast_launch.FastLaunch` (the compiled kernel's own launcher after
the first launch, without Triton's per-call dispatch); its effect on the step is not yet
timed on the H200.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .fast_launch import FastLaunch

__all__ = ["advance_decode", "check_table", "check_vectors", "copy_graph_inputs"]

_BLOCK = 256  # requests per program
_ADVANCE_ARGS = ["r2t_ptr", "rpi_ptr", "seq_ptr", "loc_ptr", "new_seq_ptr", "bs", "r2t_stride"]
_GRAPH_ARGS = ["ids_d", "rpi_d", "seq_d", "loc_d", "pos_d", "ids_s", "rpi_s", "seq_s", "loc_s",
               "pos_s", "raw_bs", "bs"]  # fmt: skip


# nothing compiled in about the arguments (FastLaunch reuses one compiled kernel)
@triton.jit(do_not_specialize=_ADVANCE_ARGS, do_not_specialize_on_alignment=_ADVANCE_ARGS)
def _advance_kernel(r2t_ptr, rpi_ptr, seq_ptr, loc_ptr, new_seq_ptr, bs, r2t_stride,
                    BLOCK: tl.constexpr):  # fmt: skip
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    m = i < bs
    seq = tl.load(seq_ptr + i, mask=m)
    row = tl.load(rpi_ptr + i, mask=m).to(tl.int64)
    loc = tl.load(loc_ptr + i, mask=m)
    tl.store(r2t_ptr + row * r2t_stride + seq.to(tl.int64), loc.to(tl.int32), mask=m)
    tl.store(new_seq_ptr + i, seq + 1, mask=m)  # the same lane read it: in place is safe


@triton.jit(do_not_specialize=_GRAPH_ARGS, do_not_specialize_on_alignment=_GRAPH_ARGS)
def _graph_inputs_kernel(ids_d, rpi_d, seq_d, loc_d, pos_d, ids_s, rpi_s, seq_s, loc_s, pos_s,
                         raw_bs, bs, BLOCK: tl.constexpr):  # fmt: skip
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    real = i < raw_bs
    rows = i < bs  # the padded rows too: length 1, KV slot 0
    tl.store(ids_d + i, tl.load(ids_s + i, mask=real).to(ids_d.dtype.element_ty), mask=real)
    tl.store(rpi_d + i, tl.load(rpi_s + i, mask=real).to(rpi_d.dtype.element_ty), mask=real)
    tl.store(pos_d + i, tl.load(pos_s + i, mask=real).to(pos_d.dtype.element_ty), mask=real)
    seq = tl.load(seq_s + i, mask=real, other=1)
    tl.store(seq_d + i, seq.to(seq_d.dtype.element_ty), mask=rows)
    loc = tl.load(loc_s + i, mask=real, other=0)
    tl.store(loc_d + i, loc.to(loc_d.dtype.element_ty), mask=rows)


_advance = FastLaunch(_advance_kernel)
_graph_inputs = FastLaunch(_graph_inputs_kernel)


def check_vectors(what: str, tensors: tuple[torch.Tensor, ...], n: int) -> None:
    """ValueError unless every tensor is a contiguous 1-D integer tensor of ``n``+ elements."""
    for t in tensors:
        if t.dim() != 1 or t.stride(0) != 1 or t.shape[0] < n or t.dtype.is_floating_point:
            raise ValueError(
                f"{what}: every tensor must be a contiguous 1-D integer tensor of at least "
                f"{n} elements, got shape {tuple(t.shape)}, stride {t.stride()}, {t.dtype}"
            )


def advance_decode(
    req_to_token: torch.Tensor,
    req_pool_indices: torch.Tensor,
    seq_lens: torch.Tensor,
    out_cache_loc: torch.Tensor,
    *,
    in_place: bool,
    check: bool = True,
) -> torch.Tensor:
    """``req_to_token[req_pool_indices, seq_lens] = int32(out_cache_loc)``; returns
    ``seq_lens + 1``, written into ``seq_lens`` itself when ``in_place``, else into a new
    tensor.  One launch; as ``decode_inputs_ref.advance_decode_ref``.  ``check=False`` skips
    the shape checks (a caller that made them once: they cost host time every step)."""
    bs = seq_lens.shape[0]
    if check:
        check_table(req_to_token)
        check_vectors("advance_decode", (req_pool_indices, seq_lens, out_cache_loc), bs)
    new = seq_lens if in_place else torch.empty_like(seq_lens)
    if bs:
        grid = (triton.cdiv(bs, _BLOCK),)
        _advance(grid, req_to_token, req_pool_indices, seq_lens, out_cache_loc, new, bs,
                 req_to_token.stride(0), BLOCK=_BLOCK)  # fmt: skip
    return new


def check_table(req_to_token: torch.Tensor) -> None:
    """ValueError unless ``req_to_token`` is a 2-D int32 table with contiguous rows."""
    if req_to_token.dim() != 2 or req_to_token.stride(1) != 1 or req_to_token.dtype != torch.int32:
        raise ValueError(
            f"advance_decode: req_to_token must be a 2-D int32 table with contiguous rows, "
            f"got shape {tuple(req_to_token.shape)}, stride {req_to_token.stride()}, "
            f"{req_to_token.dtype}"
        )


def copy_graph_inputs(
    dst: tuple[torch.Tensor, ...], src: tuple[torch.Tensor, ...], bs: int, *, check: bool = True
) -> None:
    """Copy a decode batch ``src`` (input_ids, req_pool_indices, seq_lens, out_cache_loc,
    positions; one token per request) into a graph's static buffers ``dst`` (the same five),
    padding rows ``len(src[0])`` to ``bs`` to length 1 and KV slot 0.  One launch; as
    ``decode_inputs_ref.copy_graph_inputs_ref`` on the first ``bs`` rows (sglang also fills
    the rows past ``bs``, which the graph of size ``bs`` never reads).  ``check=False``:
    as in :func:`advance_decode`."""
    raw_bs = src[0].shape[0]
    if check:
        if len(dst) != 5 or len(src) != 5 or not raw_bs <= bs:
            raise ValueError(
                f"copy_graph_inputs: need five buffers, five batch tensors and a batch of at "
                f"most bs={bs} rows, got {len(dst)}, {len(src)} and {raw_bs} rows"
            )
        check_vectors("copy_graph_inputs (graph buffers)", dst, bs)
        check_vectors("copy_graph_inputs (batch)", src, raw_bs)
    if bs:
        _graph_inputs((triton.cdiv(bs, _BLOCK),), *dst, *src, raw_bs, bs, BLOCK=_BLOCK)
