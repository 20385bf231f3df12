"""On CUDA the engine's norms, rope and SiLU-and-mul run the Triton kernels of
``sglang_ext.kernels``; here the fused model's chunked prefill (logits and every layer's KV) is
compared with the same model on the plain-torch path in float32, and a chunk is checked to
run without a host synchronisation (``torch.cuda.set_sync_debug_mode('error')``).

    python -m pytest -m gpu tests/engine/test_fused_ops_gpu.py
"""

from __future__ import annotations

import pytest
import torch

from sglang_ext.engine.model import load_model

pytestmark = pytest.mark.gpu

P, CHUNK = 24, 7  # chunks 7, 7, 7, 3: a first chunk, later chunks and a short one


def _prefill(model, ids, chunk):
    caches = model.new_cache(len(ids) + 1)
    layers = range(model.args.num_hidden_layers)
    for s in range(0, len(ids), chunk):
        h = model.run_layers(model.embed(ids[s : s + chunk]), layers, caches, s, "sdpa")
    kv = torch.stack([torch.stack([c.k[: len(ids)], c.v[: len(ids)]]) for c in caches])
    return model.logits(h[-1:])[0], kv


@pytest.fixture
def calls(monkeypatch):
    """Counts the kernel entry points the fused path must go through."""
    import sglang_ext.kernels.activation as act
    import sglang_ext.kernels.norm as norm
    import sglang_ext.kernels.rope as rope

    n = {"rmsnorm": 0, "apply_rope_inplace": 0, "gated_act": 0}
    for mod in (norm, rope, act):
        for name in n:
            if hasattr(mod, name):
                fn = getattr(mod, name)

                def wrapped(*a, _fn=fn, _name=name, **kw):
                    n[_name] += 1
                    return _fn(*a, **kw)

                monkeypatch.setattr(mod, name, wrapped)
    return n


@pytest.mark.parametrize("kind", ["qwen3", "qwen3_moe"])
def test_fused_engine_matches_torch_path_fp32(tiny_models, kind, calls):
    kw = dict(device="cuda", dtype=torch.float32)
    fused = load_model(tiny_models[kind], **kw)
    plain = load_model(tiny_models[kind], fused_ops=False, **kw)
    assert fused.fused_ops and not plain.fused_ops
    ids = torch.randint(0, 256, (P,), generator=torch.Generator().manual_seed(3)).cuda()
    n_chunks, L = 4, fused.args.num_hidden_layers
    dense = sum(not fused.args.is_moe_layer(i) for i in range(L))
    assert (kind == "qwen3") == (dense == L)
    ref_logits, ref_kv = _prefill(plain, ids, CHUNK)
    # SingleExpertMoE's cuBLAS path runs its activation kernel on CUDA in either engine path
    moe_acts = n_chunks * (L - dense)
    assert calls == {"rmsnorm": 0, "apply_rope_inplace": 0, "gated_act": moe_acts}
    got_logits, got_kv = _prefill(fused, ids, CHUNK)
    # per chunk and layer: input/post norms + q/k norms, one rope; the final norm once
    assert calls["rmsnorm"] == n_chunks * L * 4 + 1
    assert calls["apply_rope_inplace"] == n_chunks * L
    assert calls["gated_act"] == moe_acts + n_chunks * L  # the fused run: every layer's MLP
    torch.testing.assert_close(got_logits, ref_logits, atol=1e-4, rtol=1e-4)
    for layer in range(L):
        torch.testing.assert_close(
            got_kv[layer],
            ref_kv[layer],
            atol=1e-4,
            rtol=1e-4,
            msg=lambda m, layer=layer: f"KV {layer}: {m}",
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_chunk_never_syncs_the_host(dtype):
    """Two layers of the 30B-A3B one-expert shape (its SingleExpertMoE kernel dispatch), a
    later chunk over a cached prefix: any .item()/.cpu()/nonzero inside raises."""
    m = load_model(None, dummy_preset="qwen3-30b-a3b-1e", num_layers=2, device="cuda", dtype=dtype)
    ids = torch.randint(0, m.args.vocab_size, (1024,), device="cuda")
    caches = m.new_cache(1024)
    layers = range(2)
    for s in (0, 512):  # warm-up: Triton compiles, cuBLAS picks its algorithms
        m.run_layers(m.embed(ids[s : s + 512]), layers, caches, s, "sdpa")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for s in (0, 512):
            h = m.run_layers(m.embed(ids[s : s + 512]), layers, caches, s, "sdpa")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    plain = load_model(
        None, dummy_preset="qwen3-30b-a3b-1e", num_layers=2, device="cuda", dtype=dtype,
        fused_ops=False,
    )  # fmt: skip
    ref = plain.run_layers(plain.embed(ids[:512]), layers, plain.new_cache(1024), 0, "sdpa")
    h0 = m.run_layers(m.embed(ids[:512]), layers, m.new_cache(1024), 0, "sdpa")
    assert torch.isfinite(h).all()
    rel = ((h0.float() - ref.float()).norm() / ref.float().norm()).item()
    assert rel < (1e-5 if dtype == torch.float32 else 3e-2), rel
