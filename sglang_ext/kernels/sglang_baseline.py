"""Bench-only runtime shim to run stock SGLang 0.4.7's ``fused_experts`` at E=1, top-1.

Used ONLY by ``bench/bench_fused_mlp.py`` on the lent GPU (torch 2.11, Triton 3.6, no
sgl_kernel), where stock 0.4.7 fails in two places:

1. ``sglang/srt/utils.py:82`` does ``from triton.runtime.cache import default_cache_dir,
   default_dump_dir, default_override_dir``; Triton >= 3.4 removed those functions (the
   values live in ``triton.knobs.cache``).  The shim puts equivalents back.
2. ``fused_moe.py:40,46`` import ``silu_and_mul``/``gelu_and_mul``/``moe_align_block_size``
   from ``sgl_kernel`` under ``_is_cuda`` (and other modules on the import path import more
   names from it).  The shim installs a stand-in ``sgl_kernel`` module: ``silu_and_mul`` and
   ``gelu_and_mul`` in torch, every other name a stub that raises when CALLED, and sets
   ``ENABLE_MOE_ALIGN_BLOCK_SIZE_TRITON=1`` so sglang uses its own Triton align instead of
   the CUDA op.  So the align timed here is sglang's Triton fallback, not sgl_kernel's op.

Call :func:`install` before anything imports sglang.  The real fix is the patch series.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import os
import sys
import types

import torch
import torch.nn.functional as F

__all__ = ["install", "SHIM_LOG"]

logger = logging.getLogger(__name__)
SHIM_LOG: list[str] = []  # what the shim had to do, recorded with the bench results


def _patch_triton_cache() -> None:
    import triton.runtime.cache as cache

    if hasattr(cache, "default_cache_dir"):
        return
    from triton import knobs

    cache.default_cache_dir = lambda: knobs.cache.dir
    cache.default_dump_dir = lambda: knobs.cache.dump_dir
    cache.default_override_dir = lambda: knobs.cache.override_dir
    SHIM_LOG.append("triton.runtime.cache.default_{cache,dump,override}_dir re-added "
                    "(removed in Triton >= 3.4; sglang/srt/utils.py:82 imports them)")


def _silu_and_mul(x: torch.Tensor, out: torch.Tensor) -> None:
    # sgl_kernel.silu_and_mul(input [T, 2N], out [T, N]): out = silu(input[:, :N]) * input[:, N:]
    n = x.shape[-1] // 2
    torch.mul(F.silu(x[..., :n]), x[..., n:], out=out)


def _gelu_and_mul(x: torch.Tensor, out: torch.Tensor) -> None:
    n = x.shape[-1] // 2
    torch.mul(F.gelu(x[..., :n]), x[..., n:], out=out)


class _StandIn(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)

        def _missing(*args, **kwargs):
            raise NotImplementedError(f"sgl_kernel.{name} is not available: bench shim "
                                      "stand-in (sgl_kernel is not installed)")

        _missing.__name__ = name
        return _missing


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``sgl_kernel.*`` submodules (e.g. ``sgl_kernel.flash_attn``) as stand-ins."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith("sgl_kernel."):
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec):
        return _StandIn(spec.name)

    def exec_module(self, module):
        pass


def _install_sgl_kernel_standin() -> None:
    try:
        import sgl_kernel  # noqa: F401

        return
    except ImportError:
        pass
    mod = _StandIn("sgl_kernel")
    mod.__spec__ = importlib.machinery.ModuleSpec("sgl_kernel", None, is_package=True)
    mod.__path__ = []
    mod.silu_and_mul = _silu_and_mul
    mod.gelu_and_mul = _gelu_and_mul
    sys.modules["sgl_kernel"] = mod
    sys.meta_path.append(_StandInFinder())
    os.environ["ENABLE_MOE_ALIGN_BLOCK_SIZE_TRITON"] = "1"
    SHIM_LOG.append("sgl_kernel missing: stand-in module (torch silu_and_mul/gelu_and_mul, "
                    "other names raise when called); ENABLE_MOE_ALIGN_BLOCK_SIZE_TRITON=1")


def install():
    """Apply the shim and import sglang's fused-MoE module; returns that module."""
    _patch_triton_cache()
    _install_sgl_kernel_standin()
    from sglang.srt.layers.moe.fused_moe_triton import fused_moe

    for line in SHIM_LOG:
        logger.info("sglang baseline shim: %s", line)
    return fused_moe
