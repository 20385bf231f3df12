"""Attention over a KV cache: SDPA and (on GPU) flashinfer against a float64 softmax reference.

GPU run of the flashinfer cases (fails instead of skipping when flashinfer is missing):
    SGLANG_EXT_REQUIRE_FLASHINFER=1 python -m pytest -m gpu tests/engine/test_attention.py
"""

from __future__ import annotations

import os

import pytest
import torch

from sglang_ext.engine.attention import attend, flashinfer_attend, resolve_backend, sdpa_attend


def _ref(q, k, v, start):
    """float64 softmax attention; query i (position start+i) sees keys 0..start+i.
    (``start=0`` with a longer cache gives the top-left-aligned mask: keys 0..i.)"""
    q, k, v = q.double().cpu(), k.double().cpu(), v.double().cpu()
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)  # [L, H, d]
    s = torch.einsum("thd,lhd->htl", q, k) / q.shape[-1] ** 0.5
    pos_q = torch.arange(start, start + q.shape[0])[:, None]
    s = s.masked_fill(torch.arange(k.shape[0])[None, :] > pos_q, float("-inf"))
    return torch.einsum("htl,lhd->thd", s.softmax(-1), v)


def _qkv(T, start, H=4, Hkv=2, d=16, device="cpu", dtype=torch.float32):
    g = torch.Generator(device=device).manual_seed(T * 100 + start)
    mk = lambda *s: torch.randn(*s, generator=g, device=device, dtype=dtype)  # noqa: E731
    return mk(T, H, d), mk(start + T, Hkv, d), mk(start + T, Hkv, d)


@pytest.mark.parametrize("T,start", [(7, 0), (5, 11), (1, 9), (1, 0), (33, 33)])
def test_sdpa_attend_matches_reference(T, start):
    q, k, v = _qkv(T, start)
    # float32 vs float64 softmax over <= 66 keys: ~1e-6
    torch.testing.assert_close(
        sdpa_attend(q, k, v, start).double(), _ref(q, k, v, start), atol=1e-5, rtol=1e-5
    )


def test_backend_choice_errors():
    assert resolve_backend("auto", "cpu") == "sdpa"
    assert resolve_backend("sdpa", "cpu") == "sdpa"
    with pytest.raises(ValueError, match="needs --device cuda"):
        resolve_backend("flashinfer", "cpu")
    with pytest.raises(ValueError, match="unknown"):
        resolve_backend("xformers", "cpu")


def _ref_top_left(q, k, v, start):
    """The classic flashinfer/SDPA pitfall: causal mask aligned top-left (query i sees keys
    0..i instead of 0..start+i).  Used to show the tolerance below can tell it apart."""
    return _ref(q, k, v, 0)


def _need_flashinfer():
    """Skip without CUDA or flashinfer; SGLANG_EXT_REQUIRE_FLASHINFER=1 makes a missing
    flashinfer a failure, so a GPU run meant to cover it cannot pass by skipping."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    try:
        import flashinfer  # noqa: F401
    except ImportError as e:
        if os.environ.get("SGLANG_EXT_REQUIRE_FLASHINFER") == "1":
            pytest.fail(f"SGLANG_EXT_REQUIRE_FLASHINFER=1 but flashinfer does not import: {e}")
        pytest.skip(f"flashinfer not importable: {e}")


# bf16/fp16 inputs are exact in float64, so the only error is the kernel's own rounding:
# P and the output are rounded to 8 (bf16) / 11 (fp16) mantissa bits, values are O(1).
FI_TOL = {torch.bfloat16: 2e-2, torch.float16: 4e-3}


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(
    "T,start,H,Hkv,d",
    [
        (128, 0, 32, 4, 128),  # first chunk, the 30B-A3B head layout
        (100, 256, 32, 4, 128),  # later chunk: bottom-right causal over a prefix
        (33, 222, 8, 8, 64),  # awkward sizes, no GQA
        (1, 300, 32, 4, 128),  # decode (single_decode_with_kv_cache)
        (1, 0, 16, 2, 128),  # a one-token prompt: prefill path, one key
    ],
)
def test_flashinfer_matches_float64_reference(T, start, H, Hkv, d, dtype):
    _need_flashinfer()
    assert resolve_backend("auto", "cuda") == "flashinfer"
    q, k, v = _qkv(T, start, H=H, Hkv=Hkv, d=d, device="cuda", dtype=dtype)
    got = flashinfer_attend(q, k, v, start)
    assert got.shape == q.shape and got.dtype == dtype and got.device == q.device
    ref = _ref(q, k, v, start)
    tol = FI_TOL[dtype]
    torch.testing.assert_close(got.double().cpu(), ref, atol=tol, rtol=tol)
    torch.testing.assert_close(attend("flashinfer", q, k, v, start), got, atol=0, rtol=0)
    if start and T > 1:  # the tolerance is tight enough to catch a top-left causal mask
        wrong = _ref_top_left(q, k, v, start)
        assert (wrong - ref).abs().max() > 10 * tol


def test_flashinfer_missing_is_a_clear_error(monkeypatch):
    import sglang_ext.engine.attention as att

    monkeypatch.setattr(att, "_flashinfer_available", lambda: False)
    assert att.resolve_backend("auto", "cuda") == "sdpa"  # auto falls back
    with pytest.raises(ValueError, match="flashinfer is not installed"):
        att.resolve_backend("flashinfer", "cuda")


@pytest.mark.parametrize("T,start", [(5, 11), (33, 33)])
def test_top_left_mask_is_far_from_the_reference(T, start):
    """CPU check of the discriminator used on the GPU: a top-left mask is off by >> 2e-2."""
    q, k, v = _qkv(T, start, H=8, Hkv=2, d=32)
    assert (_ref_top_left(q, k, v, start) - _ref(q, k, v, start)).abs().max() > 0.2
