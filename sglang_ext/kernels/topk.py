"""``topk_softmax`` in one Triton kernel (sgl_kernel's MoE router op).

A program takes ``ROWS`` tokens: it reads each token's ``E`` logits once, takes the float32
softmax in registers and picks the ``k`` largest probabilities by repeated arg-max (ties go to
the lower expert id, as in the CUDA op), writing weights, ids and ``token_expert_indices``
once.  The plain-torch reference is ``topk_ref``; more than ``MAX_EXPERTS`` experts use it.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .topk_ref import topk_softmax_ref

__all__ = ["topk_softmax", "MAX_EXPERTS"]

MAX_EXPERTS = 4096
_TILE = 2048  # logits per program (ROWS * E_PAD)


@triton.jit
def _topk_softmax_kernel(
    g_ptr,
    w_ptr,
    id_ptr,
    tei_ptr,
    M,
    E,
    sg_r,
    sg_c,
    sw_r,
    sw_c,
    si_r,
    si_c,
    st_r,
    st_c,
    K: tl.constexpr,
    ROWS: tl.constexpr,
    E_PAD: tl.constexpr,
):
    rows = tl.program_id(0) * ROWS + tl.arange(0, ROWS)  # [ROWS]
    rmask = rows < M
    rows64 = rows.to(tl.int64)
    e = tl.arange(0, E_PAD)
    mask = rmask[:, None] & (e < E)[None, :]
    x = tl.load(g_ptr + rows64[:, None] * sg_r + e[None, :] * sg_c, mask=mask,
                other=-float("inf")).to(tl.float32)  # fmt: skip
    mx = tl.where(rmask, tl.max(x, axis=1), 0.0)
    p = tl.where(mask, tl.exp(x - mx[:, None]), 0.0)
    p = p / tl.sum(p, axis=1)[:, None]
    p = tl.where(mask, p, -1.0)  # padded experts are never picked
    for j in tl.static_range(K):
        best = tl.max(p, axis=1)  # [ROWS]
        idx = tl.min(tl.where(p == best[:, None], e[None, :], E_PAD), axis=1)
        tl.store(w_ptr + rows64 * sw_r + j * sw_c, best.to(w_ptr.dtype.element_ty), mask=rmask)
        tl.store(id_ptr + rows64 * si_r + j * si_c, idx.to(id_ptr.dtype.element_ty), mask=rmask)
        tl.store(tei_ptr + rows64 * st_r + j * st_c, (j * M + rows).to(tei_ptr.dtype.element_ty),
                 mask=rmask)  # fmt: skip
        p = tl.where(e[None, :] == idx[:, None], -2.0, p)


def topk_softmax(
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    token_expert_indices: torch.Tensor,
    gating_output: torch.Tensor,
) -> None:
    """Fill the three ``[M, k]`` outputs from ``gating_output`` ([M, E]) in one launch."""
    m, k = topk_weights.shape
    n_exp = gating_output.shape[1]
    if n_exp > MAX_EXPERTS or m == 0:
        topk_softmax_ref(topk_weights, topk_ids, token_expert_indices, gating_output)
        return
    e_pad = triton.next_power_of_2(n_exp)
    rows = max(1, _TILE // e_pad)
    _topk_softmax_kernel[(triton.cdiv(m, rows),)](
        gating_output, topk_weights, topk_ids, token_expert_indices, m, n_exp,
        *gating_output.stride(), *topk_weights.stride(), *topk_ids.stride(),
        *token_expert_indices.stride(), K=k, ROWS=rows, E_PAD=e_pad, num_warps=4,
    )  # fmt: skip
