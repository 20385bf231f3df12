"""Programmatic dependent launch (PDL) for our Triton kernels on Hopper and later GPUs.

A decode step is hundreds of small kernels (8-12 per decoder layer), each a few
microseconds, and much of each one's time is fixed: its launch, its blocks reaching the
SMs, the first loads' DRAM latency.  With PDL (compute capability 9.0+) a kernel may be
launched while the one before it in the stream is still running: its blocks sit at
``griddepcontrol.wait`` (``tl.extra.cuda.gdc_wait``) until that kernel has completed and its
writes are visible, then run.  CUDA graphs keep the dependency as a programmatic edge.

The protocol every kernel here follows, so mixing PDL and plain launches stays correct:

* launched with ``launch_pdl=True`` only when its source calls :func:`wait_then_release`
  before any global load or store of data another kernel writes or reads (weights, which no
  kernel of the step writes, may be read before it: ``gemv``'s L2 prefetch);
* :func:`wait_then_release` first waits, then lets the next PDL kernel launch
  (``gdc_launch_dependents``): at most two of our kernels are resident at once, and a
  kernel's dependents see everything it depends on (they wait for its completion, which
  comes after its own wait).
* A kernel not launched with PDL (cuBLAS, sglang's attention) keeps plain stream order;
  a PDL kernel after it still waits for it.

:func:`launch_kwargs` gives a launch its extra arguments: ``PDL=True, launch_pdl=True``
where PDL is on for the tensor's device, ``PDL=False`` elsewhere (CPU, the interpreter,
GPUs before Hopper, a Triton without ``gdc_wait``, or the ranks' typed config's ``pdl`` off:
``SGLANG_EXT_PDL`` unset or 0, the default).

Off by default because it does not pay on the H200 for both presets.  First
(``bench/results/h200/gpu_call29.log``, Qwen3-30B-A3B one-expert decode, same run: graph replay
2.15 vs 2.08 ms at batch 1, 3.00 vs 3.07 ms at batch 32) sglang's attention and cuBLAS launched
plainly and broke the overlap every layer.  With every kernel of the 30B batch-1 layer ours
(``gpu_call39.log``, same run, off vs on): the 30B graphs took 1.72 / 2.39 / 2.96 ms vs
1.65 / 2.26 / 2.89 at batch 1 / 8 / 32, but the whole steps, host-bound, did not drop (batch 1:
2.03 and 2.32 vs 2.12 and 2.26 ms), and the 235B batch-1 graph was slower, 6.74 vs 7.26 ms.
"""

from __future__ import annotations

import functools

import torch
import triton
import triton.language as tl
from triton.runtime import JITFunction

__all__ = ["enabled", "launch_kwargs", "supported", "wait_then_release"]


@triton.jit
def wait_then_release():
    """Wait for the kernels this launch depends on, then let the next PDL launch start."""
    tl.extra.cuda.gdc_wait()
    tl.extra.cuda.gdc_launch_dependents()


_COMPILED = isinstance(wait_then_release, JITFunction)  # False under TRITON_INTERPRET=1
_OFF = {"PDL": False}
_ON = {"PDL": True, "launch_pdl": True}


def _triton_has_gdc() -> bool:
    cuda = getattr(getattr(tl, "extra", None), "cuda", None)
    return hasattr(cuda, "gdc_wait") and hasattr(cuda, "gdc_launch_dependents")


@functools.cache
def supported(device_index: int) -> bool:
    """This CUDA device and this Triton can launch with PDL (capability 9.0+, gdc ops)."""
    return (
        _COMPILED and _triton_has_gdc() and torch.cuda.get_device_capability(device_index)[0] >= 9
    )


def _on(device_index: int) -> bool:
    from sglang_ext.serving.config import rank_config  # the ranks' typed switch, cached

    return supported(device_index) and rank_config().pdl


def enabled(t: torch.Tensor) -> bool:
    """PDL is on for launches on ``t``'s device (both inputs read once per process)."""
    return t.is_cuda and _on(t.device.index if t.device.index is not None else 0)


def launch_kwargs(t: torch.Tensor) -> dict[str, bool]:
    """The PDL arguments of a launch on ``t``'s device: pass as ``**launch_kwargs(t)``."""
    return _ON if enabled(t) else _OFF
