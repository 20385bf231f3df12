"""Stand-in for ``sgl_kernel.flash_attn`` (FlashAttention-3): every op raises.

Imported at module level by ``layers/attention/flashattention_backend.py``,
``layers/attention/vision.py`` and ``models/internvl.py``; the import succeeds so the model
registry keeps those modules, and a call tells the user to pass
``--attention-backend triton`` (sglang 0.4.7 picks fa3 by default for Qwen3(-MoE) on Hopper).
"""

from ._missing import missing_module_getattr

__getattr__ = missing_module_getattr("flash_attn.")
