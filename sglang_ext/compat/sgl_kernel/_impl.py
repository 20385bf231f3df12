"""Which implementation a stand-in op runs: flashinfer's CUDA kernel, our Triton kernel, or the
plain-torch reference.

``SGLANG_EXT_STANDIN_IMPL`` (one of :data:`IMPLS`):

* ``auto`` (default): on CUDA tensors :func:`auto_cuda_provider` (Triton: measured faster
  than flashinfer on the H200); torch on any other device;
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
    """What ``auto`` runs on CUDA tensors: our Triton kernels.

    Measured on the H200 in one run (``bench/standin_ops_h200.sh``, CUDA-graph medians,
    ``bench/results/h200/standin_ops_flashinfer.jsonl``): flashinfer 0.2.6.post1 was slower on
    the norms and rope (1.02-1.86x the Triton time at 1-32 tokens, q/k norm 7.5-8.5x at 4096)
    and 4-11% faster only on ``silu_and_mul`` at 1-32 tokens (equal at 4096), which the
    one-expert MLP does not call through the stand-in. It would also JIT-build at every first
    server start. ``SGLANG_EXT_STANDIN_IMPL=flashinfer`` still selects it.
    """
    return "triton"


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
