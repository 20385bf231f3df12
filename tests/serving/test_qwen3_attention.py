"""serving/qwen3_attention.qk_norm_rope, the call patch 0017 puts in Qwen3-MoE attention.

On CUDA (gpu tests) the fused kernel's q/k, written in place into a qkv buffer, are checked
against float64 norm-then-rope from the definitions; the unsupported cases must take the
module's own two calls. On CPU every call takes the module's own two calls.
The KV-cache write (patch 0018): with a plain MHATokenToKVPool and a backend that honours
``save_kv_cache=False``, the launch writes the rotated key and the value to the rows
``out_cache_loc`` (checked against float64 and the value itself) and asks the backend not to
write; with an fp8 cache, a scaled layer, another backend or pool, or a batch whose slots do
not match its tokens, it leaves the cache alone and the backend writes.
"""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "kernels"))
from _standin_cases import rms64, rope64, rope_cache  # noqa: E402

from sglang_ext.serving.qwen3_attention import (  # noqa: E402
    fusable,
    kv_cache_target,
    qk_norm_rope,
)

HQ, HK, EPS, MAX_POS = 4, 2, 1e-6, 256


class RMSNorm(torch.nn.Module):  # the fields of sglang's RMSNorm that the call reads
    def __init__(self, d, w):
        super().__init__()
        self.weight = torch.nn.Parameter(w)
        self.variance_epsilon = EPS

    def forward(self, x):
        x32 = x.double()
        y = x32 / torch.sqrt((x32 * x32).mean(-1, keepdim=True) + EPS) * self.weight.double()
        return y.to(x.dtype)


class RotaryEmbedding(torch.nn.Module):  # sglang's fields; forward = float64 rope
    def __init__(self, d, neox, rot=None):
        super().__init__()
        self.head_size, self.is_neox_style = d, neox
        self.register_buffer("cos_sin_cache", rope_cache(MAX_POS, rot or d))
        self.calls = 0

    def forward(self, positions, q, k):
        self.calls += 1
        t = positions.numel()
        for x in (q, k):
            v = x.view(t, -1, self.head_size)
            v.copy_(rope64(v, positions, self.cos_sin_cache, self.is_neox_style).to(x.dtype))
        return q, k


class Attn(torch.nn.Module):
    def __init__(self, d, neox=True, rot=None, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.head_dim = d
        self.q_norm = RMSNorm(d, torch.rand(d, generator=g) + 0.5)
        self.k_norm = RMSNorm(d, torch.rand(d, generator=g) + 0.5)
        self.rotary_emb = RotaryEmbedding(d, neox, rot)

    def _apply_qk_norm(self, q, k):  # sglang's method, same shape handling
        q = self.q_norm(q.reshape(-1, self.head_dim)).view(q.shape)
        k = self.k_norm(k.reshape(-1, self.head_dim)).view(k.shape)
        return q, k


def _qkv(t, d, dtype, dev):
    g = torch.Generator().manual_seed(t * 1000 + d)
    qkv = (torch.randn(t, (HQ + 2 * HK) * d, generator=g) * 3).to(dtype).to(dev)
    pos = torch.randint(0, MAX_POS, (t,), generator=g).to(dev)
    return qkv, pos


def _want(attn, qkv, pos):
    d = attn.head_dim
    t = qkv.shape[0]
    q0, k0, _ = qkv.double().cpu().split([HQ * d, HK * d, HK * d], -1)
    cache = attn.rotary_emb.cos_sin_cache
    q = rope64(rms64(q0.reshape(t, HQ, d), attn.q_norm.weight, EPS, False), pos, cache, True)
    k = rope64(rms64(k0.reshape(t, HK, d), attn.k_norm.weight, EPS, False), pos, cache, True)
    return q, k


def test_cpu_takes_the_modules_own_calls():
    attn = Attn(64)
    qkv, pos = _qkv(5, 64, torch.float32, "cpu")
    want_q, want_k = _want(attn, qkv, pos)
    q, k, _ = qkv.split([HQ * 64, HK * 64, HK * 64], -1)
    assert not fusable(attn, q)
    q, k, save_kv_cache = qk_norm_rope(attn, pos, q, k)
    assert attn.rotary_emb.calls == 1 and save_kv_cache
    torch.testing.assert_close(q.double().reshape(5, HQ, 64), want_q, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(k.double().reshape(5, HK, 64), want_k, rtol=1e-5, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("t,d", [(1, 128), (33, 128), (7, 64), (300, 32)])
def test_cuda_fused_matches_float64(t, d, dtype, tol):
    attn = Attn(d).to(device="cuda", dtype=dtype)
    qkv, pos = _qkv(t, d, dtype, "cuda")
    want_q, want_k = _want(attn, qkv, pos)
    v0 = qkv[:, (HQ + HK) * d :].clone()
    q, k, v = qkv.split([HQ * d, HK * d, HK * d], -1)
    assert fusable(attn, q)
    q2, k2, save_kv_cache = qk_norm_rope(attn, pos, q, k)
    assert save_kv_cache  # no batch given: the backend still writes the cache
    torch.cuda.synchronize()
    assert attn.rotary_emb.calls == 0  # the fused kernel served it
    assert q2.data_ptr() == q.data_ptr()  # in place in the qkv buffer
    torch.testing.assert_close(q2.double().cpu().reshape(t, HQ, d), want_q, rtol=tol, atol=tol)
    torch.testing.assert_close(k2.double().cpu().reshape(t, HK, d), want_k, rtol=tol, atol=tol)
    assert torch.equal(v, v0.to(v.device))


@pytest.mark.gpu
@pytest.mark.parametrize("neox,rot", [(False, None), (True, 32)])
def test_cuda_unsupported_rope_takes_the_modules_calls(neox, rot):
    attn = Attn(64, neox=neox, rot=rot).cuda()
    qkv, pos = _qkv(3, 64, torch.float32, "cuda")
    q, k, _ = qkv.split([HQ * 64, HK * 64, HK * 64], -1)
    assert not fusable(attn, q)
    qk_norm_rope(attn, pos, q, k)
    assert attn.rotary_emb.calls == 1


# ---- the KV-cache write (patch 0018) ----------------------------------------------------------
SLOTS = 64


class MHATokenToKVPool:  # the fields of sglang's pool that the call reads
    def __init__(self, d, dtype, dev, store_dtype=None, layers=2):
        self.dtype, self.store_dtype = dtype, store_dtype or dtype
        g = torch.Generator().manual_seed(7)
        self.k_buffer = [
            torch.randn(SLOTS, HK, d, generator=g).to(dtype).to(dev) for _ in range(layers)
        ]
        self.v_buffer = [
            torch.randn(SLOTS, HK, d, generator=g).to(dtype).to(dev) for _ in range(layers)
        ]

    def get_key_buffer(self, layer_id):
        return self.k_buffer[layer_id]

    def get_value_buffer(self, layer_id):
        return self.v_buffer[layer_id]


class TritonAttnBackend:  # named as sglang's; the call reads only the type's name
    pass


class TorchNativeAttnBackend:
    pass


class FlashInferAttnBackend:  # honours save_kv_cache, but the fused write is unverified there
    pass


class Radix:  # RadixAttention's fields
    def __init__(self, layer_id=1, k_scale=None):
        self.layer_id, self.k_scale, self.v_scale = layer_id, k_scale, None


class Batch:  # ForwardBatch's fields
    def __init__(self, pool, loc, backend=TritonAttnBackend):
        self.token_to_kv_pool, self.out_cache_loc, self.attn_backend = pool, loc, backend()


def _batch(t, d, dtype, dev, **kw):
    g = torch.Generator().manual_seed(t)
    loc = torch.randperm(SLOTS, generator=g)[:t].to(dev)
    return Batch(MHATokenToKVPool(d, kw.pop("pool_dtype", dtype), dev, **kw), loc)


@pytest.mark.parametrize(
    "spoil",
    [
        "none",
        "fp8-store",
        "pool-dtype",
        "scaled",
        "backend",
        "flashinfer",
        "pool-type",
        "slots",
        "no-batch",
    ],  # fmt: skip
)
def test_kv_cache_target_only_where_the_kernel_writes_what_sglang_would(spoil):
    attn = Attn(64)
    attn.attn = Radix(k_scale=0.5 if spoil == "scaled" else None)
    t, dt = 5, torch.bfloat16
    b = _batch(
        t, 64, dt, "cpu",
        **({"store_dtype": torch.uint8} if spoil == "fp8-store" else {}),
        **({"pool_dtype": torch.float16} if spoil == "pool-dtype" else {}),
    )  # fmt: skip
    if spoil in ("backend", "flashinfer"):
        b.attn_backend = (TorchNativeAttnBackend if spoil == "backend" else FlashInferAttnBackend)()
    if spoil == "pool-type":
        b.token_to_kv_pool = type("MLATokenToKVPool", (MHATokenToKVPool,), {})(64, dt, "cpu")
    if spoil == "slots":
        b.out_cache_loc = b.out_cache_loc[:-1]
    k = torch.zeros(t, HK * 64, dtype=dt)
    got = kv_cache_target(attn, None if spoil == "no-batch" else b, k)
    if spoil != "none":
        assert got is None
        return
    kc, vc, loc = got
    assert kc is b.token_to_kv_pool.k_buffer[1] and vc is b.token_to_kv_pool.v_buffer[1]
    assert loc is b.out_cache_loc


@pytest.mark.gpu
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1.6e-2)])
@pytest.mark.parametrize("t,d", [(1, 128), (33, 128), (7, 64)])
def test_cuda_fused_writes_the_kv_cache(t, d, dtype, tol):
    attn = Attn(d).to(device="cuda", dtype=dtype)
    attn.attn = Radix()
    qkv, pos = _qkv(t, d, dtype, "cuda")
    want_q, want_k = _want(attn, qkv, pos)
    b = _batch(t, d, dtype, "cuda")
    pool, loc = b.token_to_kv_pool, b.out_cache_loc
    before = [x.clone() for x in pool.k_buffer + pool.v_buffer]
    q, k, v = qkv.split([HQ * d, HK * d, HK * d], -1)
    v0 = v.clone()
    q2, k2, save_kv_cache = qk_norm_rope(attn, pos, q, k, v, b)
    torch.cuda.synchronize()
    assert not save_kv_cache and attn.rotary_emb.calls == 0
    torch.testing.assert_close(q2.double().cpu().reshape(t, HQ, d), want_q, rtol=tol, atol=tol)
    torch.testing.assert_close(k2.double().cpu().reshape(t, HK, d), want_k, rtol=tol, atol=tol)
    kc, vc = pool.k_buffer[1], pool.v_buffer[1]
    torch.testing.assert_close(kc[loc].double().cpu(), want_k, rtol=tol, atol=tol)
    assert torch.equal(vc[loc], v0.reshape(t, HK, d))
    rest = torch.ones(SLOTS, dtype=torch.bool, device="cuda")
    rest[loc] = False
    assert torch.equal(kc[rest], before[1][rest]) and torch.equal(vc[rest], before[3][rest])
    assert torch.equal(pool.k_buffer[0], before[0]) and torch.equal(pool.v_buffer[0], before[2])
