"""A Triton kernel launched through its compiled kernel, without Triton's per-call dispatch.

``kernel[grid](*args)`` runs Triton's JIT dispatch in Python on every call: it binds the
arguments, works out their specialization, builds the cache key, looks the compiled kernel
up and only then calls its launcher.  For the decode step's bookkeeping kernels
(``decode_inputs``), launched on the host's critical path before each graph replay while
the GPU waits, that dispatch is most of the launch.  :class:`FastLaunch` keeps the compiled
kernel of the first launch for each key and afterwards calls its launcher directly
(``CompiledKernel[grid](*args)``, Triton's own launch of a compiled kernel).

Reusing one compiled kernel for later arguments is only sound where nothing about those
arguments was compiled in.  So a kernel given to :class:`FastLaunch` must be jitted with
every non-constexpr parameter in both ``do_not_specialize`` (no integer is compiled in as 1
or as a multiple of 16) and ``do_not_specialize_on_alignment`` (no pointer is assumed
16-byte aligned); that is checked when it is wrapped.  What still changes the compiled code
is the key: each tensor's dtype and device, each integer's width (32 or 64 bits) and the
constexprs.  Under the Triton interpreter (``TRITON_INTERPRET=1``) every call is Triton's
plain launch.
"""

from __future__ import annotations

from typing import Any

import torch
from triton.runtime import JITFunction

__all__ = ["FastLaunch"]

_I32 = (-(2**31), 2**31)


def _kind(a: Any) -> Any:
    """What of one argument changes the compiled kernel."""
    if isinstance(a, torch.Tensor):
        return a.dtype, a.get_device()
    if isinstance(a, bool) or not isinstance(a, int):
        return type(a)
    return _I32[0] <= a < _I32[1]


class FastLaunch:
    """``FastLaunch(kernel)(grid, *args, **constexprs)`` launches ``kernel[grid](*args,
    **constexprs)``: the first call per key through Triton's dispatch (which compiles), every
    later one through the compiled kernel's launcher.  Positional arguments are the
    kernel's non-constexpr parameters in order; the constexprs, its last parameters, come
    by name."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.compiled: dict[tuple, Any] = {}
        self.direct = isinstance(kernel, JITFunction)  # False under the interpreter
        if not self.direct:
            return
        params = kernel.params
        self.constexprs = tuple(p.name for p in params if p.is_constexpr)
        n = len(params) - len(self.constexprs)
        if any(p.is_constexpr for p in params[:n]):
            raise ValueError(f"{kernel.__name__}: FastLaunch needs the constexpr parameters "
                             "last")  # fmt: skip
        loose = [p.name for p in params[:n]
                 if not (p.do_not_specialize and p.do_not_specialize_on_alignment)]  # fmt: skip
        if loose:
            raise ValueError(
                f"{kernel.__name__}: parameters {loose} may be specialized, so a compiled "
                "kernel would not hold for later arguments; jit it with them in both "
                "do_not_specialize and do_not_specialize_on_alignment"
            )
        self.n_args = n

    def __call__(self, grid: tuple[int, ...], *args: Any, **constexprs: Any) -> None:
        if not self.direct:
            self.kernel[grid](*args, **constexprs)
            return
        if len(args) != self.n_args or constexprs.keys() != set(self.constexprs):
            raise TypeError(f"{self.kernel.__name__}: expected {self.n_args} positional "
                            f"arguments and the constexprs {self.constexprs}")  # fmt: skip
        values = tuple(constexprs[name] for name in self.constexprs)
        key = (tuple(map(_kind, args)), values)
        compiled = self.compiled.get(key)
        if compiled is None:
            self.compiled[key] = self.kernel[grid](*args, **constexprs)
        else:  # the compiled kernel's launcher reads all three grid dimensions
            compiled[(*grid, 1, 1)[:3]](*args, *values)
