"""sglang-ext: a patched SGLang 0.4.7 for single-expert MoE research, plus tools.

Importing this package changes nothing in sglang: patches are applied by
``python -m sglang_ext.patch`` or installed at start-up by ``sglang_ext.launch_server``.
"""

__version__ = "0.1.0"
SGLANG_VERSION = "0.4.7"

__all__ = ["__version__", "SGLANG_VERSION"]
