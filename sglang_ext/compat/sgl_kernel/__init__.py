"""sglang-ext's torch stand-in for the ``sgl_kernel`` package (sgl-kernel 0.1.7), NOT the real one.

For CUDA machines where sgl-kernel cannot be installed (e.g. torch 2.11 / Triton 3.6 with no
matching wheel).  ``sglang_ext.compat.standin_path()`` is put on ``PYTHONPATH`` only when
``sglang_ext.compat.need_standin()`` says the real package is missing, so ``import sgl_kernel``
in sglang 0.4.7 finds this module.

What it provides, with sgl_kernel 0.1.7's calling conventions as sglang 0.4.7 uses them:

* plain torch: ``rmsnorm``, ``fused_add_rmsnorm``, ``gemma_rmsnorm``,
  ``gemma_fused_add_rmsnorm``, ``silu_and_mul``, ``gelu_and_mul``, ``gelu_tanh_and_mul``,
  ``apply_rope_with_cos_sin_cache_inplace``, ``topk_softmax``.
* ``moe_align_block_size``: a three-launch Triton kernel on CUDA, torch elsewhere;
  ``SGLANG_EXT_STANDIN_MOE_ALIGN=torch|triton|sglang`` forces one (``sglang`` = sglang's
  own ``moe_align_block_size_triton``).  All ops avoid host synchronisation, so sglang's
  CUDA graphs can capture them.
* every other name: ``from sgl_kernel import foo`` succeeds (module ``__getattr__``), and
  calling ``foo`` raises ``NotImplementedError`` naming the op and the flag that avoids it.
  Submodules ``sgl_kernel.allreduce`` and ``sgl_kernel.flash_attn`` behave the same way.

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

# Any other public name: a placeholder that raises NotImplementedError when called.
__getattr__ = missing_module_getattr("")
