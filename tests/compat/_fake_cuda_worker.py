"""Child process: sglang 0.4.7's CUDA code paths on CPU, bound to the sgl_kernel stand-in.

Run by ``test_standin_sglang.py`` with ``TRITON_INTERPRET=1`` and ``TORCHDYNAMO_DISABLE=1``.
Before sglang is imported, ``torch.cuda.is_available``/``torch.version.cuda`` (what
``sglang.srt.utils.is_cuda`` reads) and the device queries sglang makes at import are faked,
and the stand-in directory is put first on ``sys.path``.  So sglang takes its
``if _is_cuda: from sgl_kernel import ...`` branches, and ``forward_cuda`` methods run the
stand-in's ops on CPU tensors.  Each case writes ``None`` (pass) or a message to the JSON
file given as argv[1].
"""

import json
import os
import sys
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from sglang_ext.compat import standin_path  # noqa: E402

sys.path.insert(0, standin_path())
torch.cuda.is_available = lambda: True
torch.version.cuda = "12.8"
torch.cuda.get_device_capability = lambda *a, **k: (9, 0)
torch.cuda.device_count = lambda: 1
torch.cuda.get_device_name = lambda *a, **k: "fake-cuda-on-cpu"

import sgl_kernel  # noqa: E402
from _standin_align_check import check_alignment  # noqa: E402

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


@case
def imports_bind_standin():
    from sglang.srt.layers import activation, layernorm, rotary_embedding, sampler
    from sglang.srt.layers.moe import topk
    from sglang.srt.layers.moe.fused_moe_triton import fused_moe

    assert sgl_kernel.__sglang_ext_standin__ and sgl_kernel.__file__.startswith(standin_path())
    bound = {
        "layernorm.rmsnorm": (layernorm.rmsnorm, sgl_kernel.rmsnorm),
        "layernorm.fused_add_rmsnorm": (layernorm.fused_add_rmsnorm, sgl_kernel.fused_add_rmsnorm),
        "layernorm.gemma_rmsnorm": (layernorm.gemma_rmsnorm, sgl_kernel.gemma_rmsnorm),
        "activation.silu_and_mul": (activation.silu_and_mul, sgl_kernel.silu_and_mul),
        "activation.gelu_tanh_and_mul": (
            activation.gelu_tanh_and_mul,
            sgl_kernel.gelu_tanh_and_mul,
        ),
        "rotary_embedding.apply_rope": (
            rotary_embedding.apply_rope_with_cos_sin_cache_inplace,
            sgl_kernel.apply_rope_with_cos_sin_cache_inplace,
        ),
        "topk.topk_softmax": (topk.topk_softmax, sgl_kernel.topk_softmax),
        "fused_moe.silu_and_mul": (fused_moe.silu_and_mul, sgl_kernel.silu_and_mul),
        "fused_moe.sgl_moe_align_block_size": (
            fused_moe.sgl_moe_align_block_size,
            sgl_kernel.moe_align_block_size,
        ),
    }
    wrong = [k for k, (got, want) in bound.items() if got is not want]
    assert not wrong, f"sglang did not bind the stand-in's op for {wrong}"
    assert getattr(sampler.top_k_renorm_prob, "__sglang_ext_missing__", False)
    # the whole serving path of the models we care about imports
    import sglang.srt.layers.attention.flashattention_backend  # noqa: F401
    import sglang.srt.layers.attention.triton_backend  # noqa: F401
    import sglang.srt.model_executor.model_runner  # noqa: F401
    import sglang.srt.models.llama  # noqa: F401
    import sglang.srt.models.qwen3_moe  # noqa: F401


@case
def custom_all_reduce_fails_closed():
    from sglang.srt import _custom_ops as ops
    from sglang.srt.distributed.device_communicators import custom_all_reduce

    # import sgl_kernel succeeds, so sglang believes the library is there ...
    assert custom_all_reduce.custom_ar is True
    # ... and the first op CustomAllreduce.__init__ calls raises (GroupCoordinator catches it)
    try:
        ops.meta_size()
    except NotImplementedError as e:
        assert "--disable-custom-all-reduce" in str(e), str(e)
    else:
        raise AssertionError("ops.meta_size() should raise NotImplementedError")


def _close(got, want, rtol, atol, what):
    torch.testing.assert_close(got, want, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


@case
def layers_forward_cuda_match_forward_native():
    # sglang's own forward_native is the pristine reference; float32, so the only
    # differences are float32 rounding (atol 1e-5) - rope: angles from the same cache
    from sglang.srt.layers.activation import GeluAndMul, SiluAndMul
    from sglang.srt.layers.layernorm import GemmaRMSNorm, RMSNorm
    from sglang.srt.layers.rotary_embedding import get_rope

    for impl in ("torch", "triton"):  # the stand-in's reference, then its Triton kernels
        os.environ["SGLANG_EXT_STANDIN_IMPL"] = impl
        try:
            _layers_match(impl, RMSNorm, GemmaRMSNorm, SiluAndMul, GeluAndMul, get_rope)
        finally:
            os.environ.pop("SGLANG_EXT_STANDIN_IMPL")


def _layers_match(impl, RMSNorm, GemmaRMSNorm, SiluAndMul, GeluAndMul, get_rope):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(33, 128, generator=g)
    r = torch.randn(33, 128, generator=g)
    for cls in (RMSNorm, GemmaRMSNorm):
        norm = cls(128, eps=1e-6)
        norm.weight.data = torch.rand(128, generator=g) + 0.5
        _close(
            norm.forward_cuda(x.clone()),
            norm.forward_native(x.clone()),
            1e-5,
            1e-5,
            f"{impl} {cls.__name__}",
        )
        got = norm.forward_cuda(x.clone(), r.clone())
        want = norm.forward_native(x.clone(), r.clone())
        _close(got[0], want[0], 1e-5, 1e-5, f"{cls.__name__} with residual: out")
        _close(got[1], want[1], 1e-5, 1e-5, f"{cls.__name__} with residual: residual")
    for op in (SiluAndMul(), GeluAndMul("tanh"), GeluAndMul("none")):
        _close(op.forward_cuda(x), op.forward_native(x), 1e-5, 1e-5, repr(op))
    for neox in (True, False):
        rope = get_rope(64, rotary_dim=64, max_position=512, base=10000, is_neox_style=neox)
        assert rope.cos_sin_cache.dtype == torch.float32
        pos = torch.randint(0, 512, (33,), generator=g)
        q = torch.randn(33, 4 * 64, generator=g)
        k = torch.randn(33, 2 * 64, generator=g)
        want_q, want_k = rope.forward_native(pos, q.clone(), k.clone())
        got_q, got_k = rope.forward_cuda(pos, q.clone(), k.clone())
        _close(got_q, want_q, 1e-5, 1e-5, f"rope neox={neox} q")
        _close(got_k, want_k, 1e-5, 1e-5, f"rope neox={neox} k")


@case
def patched_rope_any_head_size_matches_forward_native():
    # patch 0015: forward_cuda of a head size sglang sends to vLLM (absent) runs
    # sglang_ext's Triton rope (interpreted here); module loaded from the patched overlay
    import importlib.util

    from sglang_ext.patching import overlay, source

    root = overlay.ensure_patched_sglang()
    tree = root / "sglang" if root else source.find_installed_sglang()
    spec = importlib.util.spec_from_file_location(
        "_patched_rotary_embedding", tree / "srt" / "layers" / "rotary_embedding.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    g = torch.Generator().manual_seed(5)
    for hd, rot, neox in [(32, 32, True), (96, 48, False), (80, 80, True)]:
        rope = mod.RotaryEmbedding(hd, rot, 512, 10000, neox, torch.float32)
        assert rope.vllm_rotary_embedding is None, "vllm is not installed here"
        pos = torch.randint(0, 512, (7,), generator=g)
        qkv = torch.randn(7, 8 * hd, generator=g)
        q, k = qkv[:, : 4 * hd], qkv[:, 4 * hd : 6 * hd]  # strided views of a fused qkv
        want_q, want_k = rope.forward_native(pos, q.clone(), k.clone())
        got_q, got_k = rope.forward_cuda(pos, q, k)
        _close(got_q, want_q, 1e-5, 1e-5, f"patched rope hd={hd} rot={rot} q")
        _close(got_k, want_k, 1e-5, 1e-5, f"patched rope hd={hd} rot={rot} k")
        assert got_q.data_ptr() == q.data_ptr(), "rope must work in place"


@case
def fused_topk_matches_float64():
    from sglang.srt.layers.moe.topk import fused_topk

    g = torch.Generator().manual_seed(1)
    logits = torch.randn(33, 16, generator=g)
    p = torch.softmax(logits.double(), -1)
    want_p, want_ids = torch.topk(p, 4, -1)
    for impl in ("torch", "triton"):
        os.environ["SGLANG_EXT_STANDIN_IMPL"] = impl
        try:
            w, ids = fused_topk(torch.empty(33, 8), logits, 4, renormalize=True)
        finally:
            os.environ.pop("SGLANG_EXT_STANDIN_IMPL")
        assert torch.equal(ids.long(), want_ids), f"{impl}: expert ids"
        _close(w.double(), want_p / want_p.sum(-1, keepdim=True), 1e-6, 1e-7, f"{impl}: weights")


def _moe_ref(x, w1, w2, tw, ti):
    # float64 SwiGLU MoE: sum_j tw[m, j] * w2[e] @ (silu(w1[e, :N] x) * (w1[e, N:] x))
    n = w2.shape[2]
    out = torch.zeros(x.shape, dtype=torch.float64)
    for m in range(x.shape[0]):
        for j in range(ti.shape[1]):
            e = int(ti[m, j])
            h = w1[e].double() @ x[m].double()
            gate, up = h[:n], h[n:]
            out[m] += float(tw[m, j]) * (w2[e].double() @ (gate / (1 + torch.exp(-gate)) * up))
    return out


@case
def fused_experts_triton_matches_float64():
    # sglang's Triton fused MoE (interpreter) with the stand-in's topk, align and SwiGLU.
    # float32 tl.dot in the interpreter rounds inputs to tf32 (10-bit mantissa): rtol 2e-3.
    from sglang.srt.layers.moe.fused_moe_triton.fused_moe import fused_experts_impl
    from sglang.srt.layers.moe.topk import fused_topk

    g = torch.Generator().manual_seed(2)
    for m, e, k in [(5, 4, 2), (17, 1, 1)]:
        x = torch.randn(m, 64, generator=g)
        w1 = torch.randn(e, 2 * 32, 64, generator=g) * 0.1
        w2 = torch.randn(e, 64, 32, generator=g) * 0.1
        tw, ti = fused_topk(x, torch.randn(m, e, generator=g), k, renormalize=True)
        want = _moe_ref(x, w1, w2, tw, ti)
        for impl in ("torch", "triton", "sglang"):
            os.environ["SGLANG_EXT_STANDIN_MOE_ALIGN"] = impl
            got = fused_experts_impl(x, w1, w2, tw, ti, inplace=False, activation="silu")
            _close(got.double(), want, 2e-3, 2e-3, f"M={m} E={e} top{k} align={impl}")
    os.environ.pop("SGLANG_EXT_STANDIN_MOE_ALIGN")


def _random_ids(g, m, k, e):
    return torch.stack([torch.randperm(e, generator=g)[:k] for _ in range(m)]).int()


ALIGN_CASES = [(1, 1, 1, 16), (33, 2, 8, 16), (300, 1, 1, 64), (222, 8, 64, 64), (9, 4, 5, 4)]


@case
def align_fused_triton_invariants():
    # the stand-in's own three-launch kernel (its default on CUDA), incl. -1 masked tokens
    g = torch.Generator().manual_seed(4)
    for m, k, e, bs in ALIGN_CASES:
        ids = _random_ids(g, m, k, e)
        ids[m // 2] = -1
        cap = ids.numel() + e * (bs - 1)
        sorted_ids = torch.full((cap,), -7, dtype=torch.int32)
        expert_ids = torch.full(((cap + bs - 1) // bs,), -7, dtype=torch.int32)
        n_post = torch.empty(1, dtype=torch.int32)
        cumsum = torch.empty(e + 1, dtype=torch.int32)
        os.environ["SGLANG_EXT_STANDIN_MOE_ALIGN"] = "triton"
        try:
            sgl_kernel.moe_align_block_size(
                ids, e, bs, sorted_ids, expert_ids, n_post, None, cumsum
            )
        finally:
            os.environ.pop("SGLANG_EXT_STANDIN_MOE_ALIGN")
        check_alignment(ids, e, bs, sorted_ids, expert_ids, n_post)
        assert cumsum[0] == 0 and cumsum[-1] == n_post[0], f"cumsum {cumsum.tolist()}"


@case
def align_sglang_delegation_invariants():
    from sglang.srt.layers.moe.fused_moe_triton.fused_moe import moe_align_block_size

    os.environ["SGLANG_EXT_STANDIN_MOE_ALIGN"] = "sglang"
    try:
        g = torch.Generator().manual_seed(3)
        for m, k, e, bs in ALIGN_CASES[:3] + ALIGN_CASES[4:]:
            ids = _random_ids(g, m, k, e)
            sorted_ids, expert_ids, n_post = moe_align_block_size(ids, bs, e)  # sglang's
            check_alignment(ids, e, bs, sorted_ids, expert_ids, n_post)
    finally:
        os.environ.pop("SGLANG_EXT_STANDIN_MOE_ALIGN")


def main(out: str) -> None:
    results: dict[str, str | None] = {}
    for fn in CASES:
        try:
            fn()
            results[fn.__name__] = None
        except Exception:
            results[fn.__name__] = traceback.format_exc(limit=6)
    Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main(sys.argv[1])
