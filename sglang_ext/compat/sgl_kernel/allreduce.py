"""Stand-in for ``sgl_kernel.allreduce`` (custom all-reduce / mscclpp): every op raises.

``sglang/srt/_custom_ops.py:32`` binds ``custom_op = sgl_kernel.allreduce`` at import, so the
name must exist.  ``CustomAllreduce.__init__`` then calls ``ops.meta_size()`` before any
buffer is allocated; the ``NotImplementedError`` raised here is caught by
``GroupCoordinator.__init__`` (``parallel_state.py:284-293``), which logs a warning and
leaves ``ca_comm = None``: all-reduce falls back to pynccl / torch.distributed.
``--disable-custom-all-reduce`` skips the attempt (and its P2P probing) altogether.
"""

from ._missing import missing_module_getattr

__getattr__ = missing_module_getattr("allreduce.")
