"""Qwen3 decode attention in one Triton launch: the q/k norm, the rotary embedding, the
KV-cache write, the split-KV attention and the merge of its splits.

At decode sglang's Qwen3 attention (with patches 0017-0019) runs three kernels per layer after
``qkv_proj``: ``qk_norm_rope`` (per-head RMSNorm and rotary of q and k, k and v written to the
cache), the Triton GQA decode attention's stage 1 (each program one KV head of one sequence
over one of ``num_kv_splits`` token ranges, writing a partial output and its log-sum-exp) and
stage 2 (the merge of the splits).  At batch 1 on an H200 they take 3.4, 4.7 and 2.7 us, for
about 1 MB of KV reads (0.25 us): almost all latency.  Here one program per (sequence, KV head,
split) does all three:

* it normalises and rotates the query heads of its KV head from the raw ``qkv_proj`` output
  (every split's program does; they are 8-16 heads of one token);
* the program whose token range holds the new token (position ``seq_len - 1``) normalises and
  rotates that token's key, writes key and value to cache row ``cache_loc[b]`` and starts
  its softmax with that token from registers (its loop over the cache stops one token short);
* every program walks its range of the cache through ``kv_indices`` as sglang's stage 1 does
  (same split rule, same float32 online softmax), stores its partial output and log-sum-exp
  in sglang's buffers, and takes a ticket (an atomic counter per sequence and KV head); the
  last program to arrive merges the splits as sglang's stage 2 does, writes the output and
  resets the counter to 0 for the next launch (so it is safe to replay in a CUDA graph).

q and the new key are rounded to the cache's dtype before the dot products, as the unfused
path stores them; float32 caches take IEEE float32 products (sglang's stage 1 takes TF32).
On the H200 it takes 8.4 us where the three kernels took 10.9 (30B heads, batch 1; 21.7 vs
24.6 at batch 32; ``bench/results/h200/decode_attention_fused.jsonl``, from
``python bench/bench_decode_attention.py --fused``), with the new token added after the
loop.  Added before it, the H200 table's batch-32 launch (n32w4s3) compiles to 80 registers
per thread instead of 106, so 6 programs fit an SM instead of 4 (batch 64-128, n64w4s3: 115
instead of 137; batch 1-8, n128w8s2: 98 instead of 107; Triton 3.6 for sm_90, offline,
``bench/experiments/attention_registers.py``, ``bench/results/attention_registers_sm90.jsonl``);
not yet timed on the GPU.  The plain-torch reference is
``decode_attention_ref``.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import pdl
from .decode_attention_ref import decode_attention_ref
from .qk_norm_rope import norm_rotate
from .tickets import counters

__all__ = ["MIN_BLOCK_KV", "check_launch", "decode_attention", "decode_attention_ref", "tickets"]

MIN_BLOCK_KV = 32
"""Split lengths are a multiple of this (sglang 0.4.7's ``_MIN_BLOCK_KV``)."""
MAX_GROUP = 32
"""Query heads per KV head one program holds."""


@triton.jit
def _decode_attention_kernel(
    q_ptr, s_qt, k_ptr, s_kt, v_ptr, s_vt,
    qw_ptr, kw_ptr, eps,
    pos_ptr, cs_ptr, s_cs,
    kc_ptr, vc_ptr, s_ct, s_ch, loc_ptr,
    kv_indptr, kv_indices, num_kv_splits,
    mid_o, mid_lse, s_mb, s_mh, s_ms, s_lb, s_lh,
    o_ptr, s_ot,
    ticket_ptr, sm_scale,
    half,
    GROUP: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_R: tl.constexpr,
    BLOCK_D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MAX_SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr,
    MIN_BLOCK: tl.constexpr,
    DOT: tl.constexpr,
    PDL: tl.constexpr,
):  # fmt: skip
    if PDL:
        pdl.wait_then_release()
    b = tl.program_id(0).to(tl.int64)
    kvh = tl.program_id(1)
    n_kv = tl.num_programs(1)
    split = tl.program_id(2)
    head_dim = 2 * half
    dt = kc_ptr.dtype.element_ty

    h = tl.arange(0, BLOCK_H)
    hmask = h < GROUP
    qh = kvh * GROUP + h
    i = tl.arange(0, BLOCK_R)
    imask = i < half
    d = tl.arange(0, BLOCK_D)
    dmask = d < head_dim

    # every load that depends on nothing else first, so their latencies overlap
    start = tl.load(kv_indptr + b)
    seq_len = tl.load(kv_indptr + b + 1) - start
    splits = tl.load(num_kv_splits + b)
    pos = tl.load(pos_ptr + b).to(tl.int64)
    slot = tl.load(loc_ptr + b).to(tl.int64)
    m2 = hmask[:, None] & imask[None, :]
    qp = q_ptr + b * s_qt + qh[:, None] * head_dim + i[None, :]
    xq1 = tl.load(qp, mask=m2, other=0.0).to(tl.float32)
    xq2 = tl.load(qp + half, mask=m2, other=0.0).to(tl.float32)
    kp = k_ptr + b * s_kt + kvh * head_dim + i[None, :]  # [1, R]: the new key's head, a row
    m1 = imask[None, :]
    xk1 = tl.load(kp, mask=m1, other=0.0).to(tl.float32)
    xk2 = tl.load(kp + half, mask=m1, other=0.0).to(tl.float32)
    vn = tl.load(v_ptr + b * s_vt + kvh * head_dim + d[None, :], mask=dmask[None, :], other=0.0)
    qw1 = tl.load(qw_ptr + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    qw2 = tl.load(qw_ptr + half + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    kw1 = tl.load(kw_ptr + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    kw2 = tl.load(kw_ptr + half + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    cos = tl.load(cs_ptr + pos * s_cs + i, mask=imask, other=0.0).to(tl.float32)[None, :]
    sin = tl.load(cs_ptr + pos * s_cs + half + i, mask=imask, other=0.0).to(tl.float32)[None, :]

    per_split = tl.cdiv(tl.cdiv(seq_len, splits), MIN_BLOCK) * MIN_BLOCK
    s0 = per_split * split
    s1 = tl.minimum(s0 + per_split, seq_len)
    new = seq_len - 1  # the token being decoded: its key and value come from qkv
    owner = (s0 <= new) & (new < s1)  # this split holds it
    loop_end = tl.minimum(s1, new)

    # the query heads of this KV head and the new key: normalised, rotated, rounded to the
    # cache's dtype; the owner writes the new key and value to the cache
    q1, q2 = norm_rotate(xq1, xq2, qw1, qw2, cos, sin, eps, head_dim)
    q1 = q1.to(dt)
    q2 = q2.to(dt)
    k1, k2 = norm_rotate(xk1, xk2, kw1, kw2, cos, sin, eps, head_dim)
    k1 = k1.to(dt)
    k2 = k2.to(dt)
    vn = vn.to(dt)
    kh = kvh.to(tl.int64) * s_ch
    tl.store(kc_ptr + slot * s_ct + kh + i[None, :], k1, mask=m1 & owner)
    tl.store(kc_ptr + slot * s_ct + kh + half + i[None, :], k2, mask=m1 & owner)
    tl.store(vc_ptr + slot * s_ct + kh + d[None, :], vn, mask=dmask[None, :] & owner)

    # the new token first, from registers (-inf for heads past the group and for other
    # splits): its key and value are dead before the loop, which so holds 9-26 fewer
    # registers per thread than with the token added after it (attention_registers_sm90.jsonl)
    qk_new = tl.sum(q1.to(tl.float32) * k1.to(tl.float32), 1)
    qk_new += tl.sum(q2.to(tl.float32) * k2.to(tl.float32), 1)
    mine = hmask & owner
    e_max = tl.where(mine, qk_new * sm_scale, float("-inf"))
    e_sum = tl.where(mine, 1.0, 0.0).to(tl.float32)  # exp(qk_new - e_max)
    acc = e_sum[:, None] * vn.to(tl.float32)

    for n0 in range(s0, loop_end, BLOCK_N):
        n = n0 + tl.arange(0, BLOCK_N)
        nmask = n < loop_end
        loc = tl.load(kv_indices + start + n, mask=nmask, other=0).to(tl.int64)
        kcp = kc_ptr + loc[None, :] * s_ct + kh + i[:, None]
        km = nmask[None, :] & imask[:, None]
        qk = tl.dot(q1, tl.load(kcp, mask=km, other=0.0).to(dt), input_precision=DOT)
        qk += tl.dot(q2, tl.load(kcp + half, mask=km, other=0.0).to(dt), input_precision=DOT)
        qk = tl.where(hmask[:, None] & nmask[None, :], qk * sm_scale, float("-inf"))
        v = tl.load(vc_ptr + loc[:, None] * s_ct + kh + d[None, :],
                    mask=nmask[:, None] & dmask[None, :], other=0.0)  # fmt: skip
        n_max = tl.maximum(tl.max(qk, 1), e_max)
        rescale = tl.exp(e_max - n_max)
        p = tl.exp(qk - n_max[:, None])
        acc = acc * rescale[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT)
        e_sum = e_sum * rescale + tl.sum(p, 1)
        e_max = n_max

    mo = mid_o + b * s_mb + qh[:, None] * s_mh + d[None, :]
    ml = mid_lse + b * s_lb + qh * s_lh
    hd_mask = hmask[:, None] & dmask[None, :]
    if s1 > s0:
        tl.store(mo + split * s_ms, acc / e_sum[:, None], mask=hd_mask)
        tl.store(ml + split, e_max + tl.log(e_sum), mask=hmask)

    # the last of this (sequence, KV head)'s programs to get here merges the splits: every
    # split's log-sum-exp in one load, then every partial output (no branch between them,
    # so their loads are in flight together)
    tl.debug_barrier()  # every thread's stores above come before the ticket
    ticket = ticket_ptr + b * n_kv + kvh
    if tl.atomic_add(ticket, 1, sem="acq_rel") == MAX_SPLITS - 1:
        tl.atomic_xchg(ticket, 0)  # ready for the next launch
        sp = tl.arange(0, BLOCK_S)
        used = hmask[:, None] & ((per_split * sp < seq_len) & (sp < MAX_SPLITS))[None, :]
        lse = tl.load(ml[:, None] + sp[None, :], mask=used, other=float("-inf"),
                      cache_modifier=".cg")  # fmt: skip
        m = tl.max(lse, 1)
        w = tl.where(used, tl.exp(lse - m[:, None]), 0.0)  # [H, S]
        out = tl.zeros([BLOCK_H, BLOCK_D], dtype=tl.float32)
        for s in tl.static_range(MAX_SPLITS):
            part = tl.load(mo + s * s_ms, mask=hd_mask & (per_split * s < seq_len),
                           other=0.0, cache_modifier=".cg")  # fmt: skip
            w_s = tl.sum(tl.where(sp[None, :] == s, w, 0.0), 1)
            out += w_s[:, None] * part
        op = o_ptr + b * s_ot + qh[:, None] * head_dim + d[None, :]
        tl.store(op, (out / tl.sum(w, 1)[:, None]).to(o_ptr.dtype.element_ty), mask=hd_mask)


def tickets(device: torch.device, n: int) -> torch.Tensor | None:
    """The zeroed int32 counters of ``n`` (sequence, KV head) pairs on ``device``
    (``kernels.tickets.counters``); None while a CUDA graph is being captured and the
    buffer would have to grow."""
    return counters(device, n, "decode_attention")


def _rows(x: torch.Tensor, n_tok: int, width: int, name: str) -> torch.Tensor:
    if x.dim() == 3:
        x = x.flatten(1) if x.stride(2) == 1 and x.stride(1) == x.shape[2] else x
    if x.dim() != 2 or x.shape != (n_tok, width) or x.stride(1) != 1:
        raise ValueError(f"decode_attention: {name} must be [{n_tok}, {width}] with contiguous "
                         f"heads; got shape {tuple(x.shape)} stride {x.stride()}")  # fmt: skip
    return x


def check_launch(n_q: int, n_kv: int, head_dim: int) -> str | None:
    """Why the kernel cannot run these heads (None: it can)."""
    if n_kv < 1 or n_q % n_kv:
        return f"{n_q} query heads are not a multiple of {n_kv} KV heads"
    if n_q // n_kv > MAX_GROUP:
        return f"{n_q // n_kv} query heads per KV head (at most {MAX_GROUP})"
    if head_dim % 2 or head_dim < 16:
        return f"head_dim {head_dim} (an even number >= 16)"
    return None


def decode_attention(
    positions: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_weight: torch.Tensor,
    k_weight: torch.Tensor,
    eps: float,
    cos_sin_cache: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cache_loc: torch.Tensor,
    kv_indptr: torch.Tensor,
    kv_indices: torch.Tensor,
    num_kv_splits: torch.Tensor,
    mid_o: torch.Tensor,
    mid_lse: torch.Tensor,
    sm_scale: float,
    *,
    ticket: torch.Tensor,
    block_n: int = 32,
    num_warps: int = 4,
    num_stages: int = 2,
) -> torch.Tensor:
    """One decode step's attention of B sequences; returns o [B, H_q * D] (q's dtype).

    ``q`` / ``k`` / ``v`` [B, H * D] (any row stride): the raw ``qkv_proj`` slices, before
    the q/k norm (weights ``q_weight`` / ``k_weight`` [D], ``eps``) and the neox rotary
    (``cos_sin_cache`` [positions, D]: cos halves then sin halves) at ``positions`` [B].
    ``k_cache`` / ``v_cache`` [slots, H_kv, D]; the new key and value go to rows
    ``cache_loc`` [B].  Sequence b's cache slots are ``kv_indices[kv_indptr[b]:kv_indptr[b+1]]``
    in position order, its last the new token's (``cache_loc[b]``), split into
    ``num_kv_splits[b]`` ranges as sglang's decode attention splits them; ``mid_o`` [>= B, H_q,
    S, D] and ``mid_lse`` [>= B, H_q, S] float32 hold the S (>= every ``num_kv_splits``)
    partial results.  ``ticket``: :func:`tickets` of at least B * H_kv."""
    n_tok = positions.numel()
    d = cos_sin_cache.shape[-1]
    n_kv = k_cache.shape[1]
    if k_cache.dim() != 3 or k_cache.shape[2] != d or k_cache.stride(2) != 1:
        raise ValueError(f"decode_attention: k_cache must be [slots, H_kv, {d}] with contiguous "
                         f"channels; got {tuple(k_cache.shape)} stride {k_cache.stride()}")  # fmt: skip
    if v_cache.shape != k_cache.shape or v_cache.stride() != k_cache.stride():
        raise ValueError("decode_attention: v_cache must match k_cache in shape and strides")
    n_q = q.numel() // max(1, n_tok * d)
    why = check_launch(n_q, n_kv, d)
    if why:
        raise ValueError(f"decode_attention: {why}")
    q = _rows(q, n_tok, n_q * d, "q")
    k = _rows(k, n_tok, n_kv * d, "k")
    v = _rows(v, n_tok, n_kv * d, "v")
    splits = mid_o.shape[2]
    if mid_o.dim() != 4 or mid_o.shape[1] != n_q or mid_o.shape[3] != d or mid_o.stride(3) != 1:
        raise ValueError(f"decode_attention: mid_o must be [>= {n_tok}, {n_q}, S, {d}]; "
                         f"got {tuple(mid_o.shape)}")  # fmt: skip
    if mid_lse.shape[1:] != (n_q, splits) or not mid_lse.is_contiguous():
        raise ValueError(f"decode_attention: mid_lse must be contiguous [>= {n_tok}, {n_q}, "
                         f"{splits}]; got {tuple(mid_lse.shape)}")  # fmt: skip
    if mid_o.stride(1) != splits * mid_o.stride(2) or mid_o.stride(0) != n_q * mid_o.stride(1):
        raise ValueError("decode_attention: mid_o must be contiguous")
    if ticket.numel() < n_tok * n_kv or ticket.dtype != torch.int32:
        raise ValueError(f"decode_attention: ticket needs {n_tok * n_kv} int32 counters")
    o = q.new_empty((n_tok, n_q * d))
    if n_tok == 0:
        return o
    if cos_sin_cache.stride(-1) != 1:
        cos_sin_cache = cos_sin_cache.contiguous()
    group = n_q // n_kv
    _decode_attention_kernel[(n_tok, n_kv, splits)](
        q, q.stride(0), k, k.stride(0), v, v.stride(0),
        q_weight, k_weight, float(eps),
        positions, cos_sin_cache, cos_sin_cache.stride(0),
        k_cache, v_cache, k_cache.stride(0), k_cache.stride(1), cache_loc,
        kv_indptr, kv_indices, num_kv_splits,
        mid_o, mid_lse, mid_o.stride(0), mid_o.stride(1), mid_o.stride(2),
        mid_lse.stride(0), mid_lse.stride(1),
        o, o.stride(0),
        ticket, float(sm_scale),
        d // 2,
        GROUP=group,
        BLOCK_H=max(16, triton.next_power_of_2(group)),
        BLOCK_R=max(16, triton.next_power_of_2(d // 2)),
        BLOCK_D=max(16, triton.next_power_of_2(d)),
        BLOCK_N=block_n,
        MAX_SPLITS=splits,
        BLOCK_S=triton.next_power_of_2(splits),
        MIN_BLOCK=MIN_BLOCK_KV,
        DOT="ieee" if k_cache.dtype == torch.float32 else "tf32",  # float32 caches: exact
        num_warps=num_warps,
        num_stages=num_stages,
        **pdl.launch_kwargs(q),
    )  # fmt: skip
    return o
