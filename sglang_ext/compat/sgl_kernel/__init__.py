"""sglang-ext's Triton/torch stand-in for the ``sgl_kernel`` package (sgl-kernel 0.1.7), NOT the real one.

For CUDA machines where sgl-kernel cannot be installed (e.g. torch 2.11 / Triton 3.6 with no
matching wheel).  ``sglang_ext.compat.standin_path()`` is put on ``PYTHONPATH`` only when
``sglang_ext.compat.need_standin()`` says the real package is missing, so ``import sgl_kernel``
in sglang 0.4.7 finds this module.

The ops sglang 0.4.7 reaches on the Qwen3 / Qwen3-MoE serving path on CUDA (read from its
source: ``layers/layernorm.py``, ``rotary_embedding.py``, ``activation.py``, ``moe/topk.py``,
``moe/fused_moe_triton/fused_moe.py``, ``sampler.py``, ``models/qwen3_moe.py``,
``mem_cache/memory_pool.py``), each a Triton kernel in ``sglang_ext.kernels`` on CUDA
tensors beside its plain-torch reference (used off CUDA and as the fallback), and for the
norms, gated activations and rope flashinfer's kernel where flashinfer is installed
(``SGLANG_EXT_STANDIN_IMPL=auto|flashinfer|triton|torch``, see ``_impl``;
``SGLANG_EXT_FLASHINFER_CACHE`` keeps its JIT builds in a folder, see
``sglang_ext.compat.flashinfer_jit``):

=========================================  ==============================================  ================
op (sgl_kernel 0.1.7 convention)           sglang 0.4.7 call site                           kernel / ref
=========================================  ==============================================  ================
``rmsnorm(x, w, eps)``                     ``RMSNorm.forward_cuda`` (no residual): final    ``norm`` /
                                           norm, and the q/k norms of ``Qwen3MoeAttention`` ``norm_ref``
                                           (``q.reshape(-1, head_dim)``: rows of head_dim)
``fused_add_rmsnorm(x, r, w, eps)``        ``RMSNorm.forward_cuda`` with residual (input/   ``norm``
                                           post-attention norms): in place on x and r
``apply_rope_with_cos_sin_cache_inplace``  ``RotaryEmbedding.forward_cuda``, head sizes      ``rope`` /
                                           64/128/256/512, in place on q/k views; other     ``rope_ref``
                                           sizes went to vLLM's ``rotary_embedding`` (absent:
                                           patch 0015 sends them to ``rope`` too)
``silu_and_mul(x, out)``                   ``SiluAndMul.forward_cuda`` (dense MLP) and      ``activation`` /
                                           ``fused_experts_impl`` (MoE, E > 1)             ``activation_ref``
``topk_softmax(w, ids, tei, logits)``      ``fused_topk`` (``select_experts``, E > 1)       ``topk`` / ``topk_ref``
``moe_align_block_size(...)``              ``fused_moe.moe_align_block_size`` (E > 1)       ``moe_align_triton``
                                                                                           / torch (``moe``)
=========================================  ==============================================  ================

A one-expert Qwen3-MoE (patch 0010) runs ``SingleExpertMoE`` instead of ``FusedMoE``, so
``topk_softmax``/``moe_align_block_size`` are reached only by models with several experts.
``gemma_rmsnorm``, ``gemma_fused_add_rmsnorm``, ``gelu_and_mul`` and ``gelu_tanh_and_mul``
share the norm and activation kernels.  Reached on that path without an sgl_kernel op:

* sampling: with ``--sampling-backend pytorch`` (what ``launch_server`` picks with the
  stand-in) greedy is ``torch.argmax`` and the rest torch ops; the four
  ``sgl_kernel`` sampling ops belong to ``--sampling-backend flashinfer`` (they raise here).
* KV-cache writes: ``MHATokenToKVPool.set_kv_buffer`` indexes into the cache with plain
  torch (``k_buffer[layer][loc] = k``), no sgl_kernel or vLLM op.
* ``fused_moe.py`` reaches ``vllm_ops.silu_and_mul``/``moe_sum`` only off CUDA;
  ``moe_fused_gate`` only for biased grouped top-k (DeepSeek-V3), not Qwen3.

``moe_align_block_size``: a three-launch Triton kernel on CUDA, torch elsewhere;
``SGLANG_EXT_STANDIN_MOE_ALIGN=torch|triton|sglang`` forces one (``sglang`` = sglang's own
``moe_align_block_size_triton``).  No op synchronises with the host, so sglang's CUDA graphs
can capture them.  Every other name: ``from sgl_kernel import foo`` succeeds (module
``__getattr__``), and calling ``foo`` raises ``NotImplementedError`` naming the op and the
flag that avoids it.  Submodules ``sgl_kernel.allreduce`` and ``sgl_kernel.flash_attn``
behave the same way.

How sglang 0.4.7's probes of ``sgl_kernel`` end up (an import that succeeds cannot be made to
fail for one importer only, so each probe is met where the op is used):

* ``distributed/device_communicators/custom_all_reduce.py:47-56`` sets ``custom_ar = True``
  because ``import sgl_kernel`` works.  ``CustomAllreduce.__init__`` then calls
  ``ops.meta_size()`` -> ``sgl_kernel.allreduce.meta_size`` -> ``NotImplementedError``,
  before allocating anything; ``GroupCoordinator.__init__`` catches it, warns and keeps
  ``ca_comm = None``, so all-reduce uses pynccl.  ``--disable-custom-all-reduce`` avoids the
  attempt (and its P2P checks).  At TP=1 the object is never built.
* ``_custom_ops.py:22-32`` binds ``custom_op = sgl_kernel.allreduce``: the submodule exists.
* ``distributed/device_communicators/pymscclpp.py:25-30`` sets ``mscclpp_is_available``; used
  only with ``--enable-mscclpp`` (off by default), where the first op raises with advice.
* ``utils.py:2260-2266`` probes ``torch.ops.sgl_kernel.convert_weight_packed``: no such
  torch op is registered, so ``is_intel_amx_backend_available`` stays False (CPU only anyway).
* ``layers/sampler.py:15-21``: the four sampling ops are used only by
  ``--sampling-backend flashinfer``; without flashinfer installed sglang already defaults to
  ``pytorch``.  They raise with the advice ``--sampling-backend pytorch``.
* ``layers/attention/flashattention_backend.py`` (fa3, the Hopper default for Qwen3-MoE):
  ``sgl_kernel.flash_attn`` ops raise with the advice ``--attention-backend triton``.  The
  triton backend needs nothing from sgl_kernel.
"""

from __future__ import annotations

import os as _os

from sglang_ext.compat import flashinfer_jit as _flashinfer_jit

from . import allreduce, flash_attn  # noqa: F401  (sglang reads sgl_kernel.allreduce)
from ._missing import missing_module_getattr
from .elementwise import (
    apply_rope_with_cos_sin_cache_inplace,
    fused_add_rmsnorm,
    gelu_and_mul,
    gelu_tanh_and_mul,
    gemma_fused_add_rmsnorm,
    gemma_rmsnorm,
    rmsnorm,
    silu_and_mul,
)
from .moe import moe_align_block_size, topk_softmax

__version__ = "0.1.7+sglang_ext.standin"
__sglang_ext_standin__ = True

__all__ = [
    "rmsnorm",
    "fused_add_rmsnorm",
    "gemma_rmsnorm",
    "gemma_fused_add_rmsnorm",
    "silu_and_mul",
    "gelu_and_mul",
    "gelu_tanh_and_mul",
    "apply_rope_with_cos_sin_cache_inplace",
    "topk_softmax",
    "moe_align_block_size",
]
IMPLEMENTED: tuple[str, ...] = tuple(__all__)  # the ops this stand-in really computes

if _os.environ.get(_flashinfer_jit.CACHE_ENV):
    # point this process's flashinfer (sglang's attention and sampling too) at the cache now
    _flashinfer_jit.available()

# Any other public name: a placeholder that raises NotImplementedError when called.
__getattr__ = missing_module_getattr("")
