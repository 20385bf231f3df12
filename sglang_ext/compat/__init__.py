"""Compatibility helpers for running sglang 0.4.7 where parts of its stack are missing.

``sgl_kernel/`` (a package directory here) is a Triton/torch stand-in for the ``sgl_kernel``
extension.  Its docstring lists every sgl_kernel (and vLLM) op sglang 0.4.7 reaches on the
Qwen3 / Qwen3-MoE serving path on CUDA, traced from sglang's source: ``rmsnorm`` (final norm
and the q/k norms over head_dim rows), ``fused_add_rmsnorm``,
``apply_rope_with_cos_sin_cache_inplace`` (in place on the q/k views; vLLM's
``rotary_embedding`` for other head sizes, patch 0015), ``silu_and_mul``, ``topk_softmax``
and ``moe_align_block_size`` (several experts only); sampling (``--sampling-backend
pytorch``) and the KV-cache writes use plain torch.  Each op is a Triton kernel in
``sglang_ext.kernels`` beside its plain-torch reference; ``bench.py`` times the two.  The launcher puts :func:`standin_path` on ``PYTHONPATH`` of
the server processes only when :func:`need_standin` is True.  Importing this package imports
neither torch nor sglang nor the stand-in.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

__all__ = ["standin_path", "need_standin"]


def standin_path() -> str:
    """The directory to put first on ``PYTHONPATH`` so ``import sgl_kernel`` finds the stand-in.

    It is this package's directory: the only top-level package it adds is ``sgl_kernel``.
    """
    return str(Path(__file__).resolve().parent)


def need_standin() -> bool:
    """True when CUDA is available and the real ``sgl_kernel`` cannot be imported.

    A real sgl-kernel built for another torch fails at import (undefined symbols), which also
    counts as missing.  If the stand-in itself is what ``import sgl_kernel`` finds (already on
    ``sys.path``), the real package is taken as missing.
    """
    import torch

    if not torch.cuda.is_available():
        return False
    try:
        mod = importlib.import_module("sgl_kernel")
    except Exception:  # ImportError, OSError from a mismatched .so, ...
        sys.modules.pop("sgl_kernel", None)
        return True
    return bool(getattr(mod, "__sglang_ext_standin__", False))
