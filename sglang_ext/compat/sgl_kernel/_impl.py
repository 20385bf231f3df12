"""Which implementation a stand-in op runs: flashinfer's CUDA kernel, our Triton kernel, or the
plain-torch reference.

``SGLANG_EXT_STANDIN_IMPL`` (one of :data:`IMPLS`):

* ``auto`` (default): on CUDA tensors :func:`auto_cuda_provider` (flashinfer when it imports,
  else Triton); torch on any other device;
* ``flashinfer``: flashinfer on CUDA tensors (an error, naming the fix, when flashinfer does not
  import), torch elsewhere;
* ``triton``: Triton on any tensor (CPU tensors too, for ``TRITON_INTERPRET=1`` tests);
* ``torch``: the reference everywhere.

flashinfer serves only the ops and shapes it has (``sglang_ext.compat.flashinfer_ops``:
norms, gated activations, rope at head sizes 64/128/256/512, fp16/bf16, aligned rows); any
other call under ``auto`` or ``flashinfer`` runs the Triton kernel.  ``topk_softmax`` has no
flashinfer op (Triton), and ``moe_align_block_size`` its own switch
(``SGLANG_EXT_STANDIN_MOE_ALIGN``, see ``moe``).
"""

from __future__ import annotations

import os
from typing import Literal, get_args

import torch

from sglang_ext.compat import flashinfer_jit

__all__ = ["IMPL_ENV", "IMPLS", "Provider", "auto_cuda_provider", "provider", "use_triton"]

IMPL_ENV = "SGLANG_EXT_STANDIN_IMPL"
Impl = Literal["auto", "flashinfer", "triton", "torch"]
Provider = Literal["flashinfer", "triton", "torch"]
IMPLS: tuple[str, ...] = get_args(Impl)


def requested() -> Impl:
    """The switch's value, checked."""
    impl = os.environ.get(IMPL_ENV, "auto")
    if impl not in IMPLS:
        raise ValueError(f"{IMPL_ENV}={impl!r}: expected one of {', '.join(IMPLS)}")
    return impl  # type: ignore[return-value]


def auto_cuda_provider() -> Provider:
    """What ``auto`` runs on CUDA tensors: flashinfer when it imports, else Triton.

    The one rule to change if a measurement says the Triton kernels are faster.
    """
    return "flashinfer" if flashinfer_jit.available() else "triton"


def provider(t: torch.Tensor) -> Provider:
    """The implementation for an op on tensor ``t`` (before the per-shape flashinfer check)."""
    impl = requested()
    if impl == "flashinfer":
        flashinfer_jit.load()  # raises, naming the fix, when flashinfer does not import
        return "flashinfer" if t.is_cuda else "torch"
    if impl == "auto":
        return auto_cuda_provider() if t.is_cuda else "torch"
    return impl


def use_triton(t: torch.Tensor) -> bool:
    """True when an op without a flashinfer kernel should run its Triton kernel on ``t``."""
    return provider(t) != "torch"
