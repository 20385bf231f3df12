"""Attention over a KV cache: SDPA path vs a float64 softmax reference; flashinfer vs SDPA on GPU."""

from __future__ import annotations

import pytest
import torch

from sglang_ext.engine.attention import flashinfer_attend, resolve_backend, sdpa_attend


def _ref(q, k, v, start):
    """float64 softmax attention; query i (position start+i) sees keys 0..start+i."""
    q, k, v = q.double(), k.double(), v.double()
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


@pytest.mark.gpu
@pytest.mark.parametrize("T,start", [(128, 0), (100, 256), (1, 300)])
def test_flashinfer_matches_sdpa(T, start):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    pytest.importorskip("flashinfer")
    q, k, v = _qkv(T, start, H=32, Hkv=4, d=128, device="cuda", dtype=torch.bfloat16)
    # bf16 inputs, different accumulation order: ~1e-2
    torch.testing.assert_close(
        flashinfer_attend(q, k, v, start), sdpa_attend(q, k, v, start), atol=2e-2, rtol=2e-2
    )


def test_flashinfer_missing_is_a_clear_error(monkeypatch):
    import sglang_ext.engine.attention as att

    monkeypatch.setattr(att, "_flashinfer_available", lambda: False)
    assert att.resolve_backend("auto", "cuda") == "sdpa"  # auto falls back
    with pytest.raises(ValueError, match="flashinfer is not installed"):
        att.resolve_backend("flashinfer", "cuda")
