"""Attention over a KV cache: torch SDPA everywhere, flashinfer on CUDA when installed.

Both backends take the cache in flashinfer's ``NHD`` layout (``[L, Hkv, d]``) and the
query chunk ``[T, H, d]`` whose first token sits at position ``start``; the chunk attends
to cache rows ``0 .. start + T - 1`` (all earlier chunks plus itself, causal within it).
"""

from __future__ import annotations

import importlib.util
import logging

import torch
import torch.nn.functional as F
from torch.nn.attention.bias import causal_lower_right

__all__ = ["ATTENTION_BACKENDS", "resolve_backend", "attend", "sdpa_attend", "flashinfer_attend"]

logger = logging.getLogger(__name__)
ATTENTION_BACKENDS = ("auto", "sdpa", "flashinfer")


def _flashinfer_available() -> bool:
    return importlib.util.find_spec("flashinfer") is not None


def resolve_backend(name: str, device: torch.device | str) -> str:
    """``auto`` picks flashinfer on CUDA when it is installed, SDPA otherwise."""
    device = torch.device(device)
    if name not in ATTENTION_BACKENDS:
        raise ValueError(f"attention backend {name!r} unknown; choose one of {ATTENTION_BACKENDS}")
    if name == "auto":
        name = "flashinfer" if device.type == "cuda" and _flashinfer_available() else "sdpa"
    if name == "flashinfer":
        if device.type != "cuda":
            raise ValueError("--attention-backend flashinfer needs --device cuda; use sdpa on CPU")
        if not _flashinfer_available():
            raise ValueError(
                "--attention-backend flashinfer asked but flashinfer is not installed; "
                "install flashinfer-python (sglang[srt] brings it) or use --attention-backend sdpa"
            )
    return name


def sdpa_attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int) -> torch.Tensor:
    """q: [T, H, d]; k, v: [L, Hkv, d] with L == start + T. Returns [T, H, d].

    The first chunk and single-token decode use SDPA's GQA support (no copy of the KV heads;
    flash on CUDA). A later chunk attends to the whole prefix and causally within itself: the
    mask is SDPA's ``causal_lower_right`` bias (dispatched to the fused kernels on CUDA, no
    [T, L] mask materialised), over KV heads repeated for their query groups (HF order).
    """
    T, L = q.shape[0], k.shape[0]
    assert L == start + T, (L, start, T)
    # [1, H, T|L, d]: the fused (flash / memory-efficient) kernels take 4-D inputs only; a 3-D
    # call runs SDPA's math path (fp32 matmuls, the [H, T, L] scores in memory)
    qh, kh, vh = (t.transpose(0, 1)[None] for t in (q, k, v))
    gqa = qh.shape[1] != kh.shape[1]
    if start == 0:
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, enable_gqa=gqa)
    elif T == 1:
        out = F.scaled_dot_product_attention(qh, kh, vh, enable_gqa=gqa)
    else:  # query i (position start+i) sees keys 0..start+i
        rep = qh.shape[1] // kh.shape[1]
        if rep > 1:
            kh = kh.repeat_interleave(rep, dim=1)
            vh = vh.repeat_interleave(rep, dim=1)
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=causal_lower_right(T, L))
    return out[0].transpose(0, 1)


def flashinfer_attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int
) -> torch.Tensor:
    """Same contract as :func:`sdpa_attend`, through flashinfer's single-request kernels.

    flashinfer aligns a causal mask bottom-right when ``qo_len < kv_len``, which is exactly
    "chunk attends to all earlier chunks, causal within itself".
    """
    import flashinfer

    if q.shape[0] == 1 and start > 0:
        return flashinfer.single_decode_with_kv_cache(q[0], k, v, kv_layout="NHD")[None]
    return flashinfer.single_prefill_with_kv_cache(q, k, v, causal=True, kv_layout="NHD")


def attend(
    backend: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int
) -> torch.Tensor:
    if backend == "flashinfer":
        return flashinfer_attend(q, k, v, start)
    return sdpa_attend(q, k, v, start)
