"""Which implementation a stand-in op runs: the Triton kernel or its plain-torch reference.

``SGLANG_EXT_STANDIN_IMPL``: ``auto`` (default; Triton for CUDA tensors, torch otherwise),
``triton`` (also on CPU tensors, for ``TRITON_INTERPRET=1`` tests) or ``torch``.
``moe_align_block_size`` has its own switch (``SGLANG_EXT_STANDIN_MOE_ALIGN``, see ``moe``).
"""

from __future__ import annotations

import os

import torch

__all__ = ["IMPL_ENV", "use_triton"]

IMPL_ENV = "SGLANG_EXT_STANDIN_IMPL"


def use_triton(t: torch.Tensor) -> bool:
    """True when the op on tensor ``t`` should run its Triton kernel."""
    impl = os.environ.get(IMPL_ENV, "auto")
    if impl == "auto":
        return t.is_cuda
    if impl in ("triton", "torch"):
        return impl == "triton"
    raise ValueError(f"{IMPL_ENV}={impl!r}: expected 'auto', 'triton' or 'torch'")
