"""Quiet, honest logs for ``launch_server``: drop known noise, prefix only our own lines.

sglang 0.4.7 started on a CPU (or without sgl-kernel / vllm / deep_gemm) logs about 45
lines before it is ready, most of them about optional packages that are absent on
purpose. :func:`install` drops exactly those, by logger and message, with filters on the
loggers that emit them (sglang's own ``logging.basicConfig(force=True)`` replaces root
handlers, not logger filters), plus a warnings filter for pynvml's FutureWarning. Every
other line, warnings and errors included, is left as it is.

It runs in the launcher and in every process sglang spawns: ``launch_server`` calls it at
import when multiprocessing's spawn re-imports it as ``__mp_main__`` in a child, before the
child imports sglang. :func:`use_our_prefix` gives the ``sglang_ext`` logger its own
handler and ``[sglang-ext]`` prefix, leaving sglang's records to sglang's format.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings

__all__ = ["NOISE", "EPLB_NOTE", "install", "use_our_prefix"]

# (logger name, message pattern): lines about optional parts that are absent on purpose
NOISE: tuple[tuple[str, str], ...] = (
    ("sglang.srt.layers.quantization.deep_gemm", r"^Failed to import deepgemm"),
    (
        "sglang.srt.models.registry",
        r"^Ignore import error when loading \S+\. No module named '(vllm|sgl_kernel)[.']",
    ),
    # Triton without a GPU driver (grok imports a Triton kernel at module level)
    ("sglang.srt.models.registry", r"^Ignore import error when loading \S+\. 0 active drivers"),
    ("sglang.srt.layers.activation", r"^sgl-kernel is not available on Non-NV platforms"),
    ("sglang.srt.layers.layernorm", r"^sgl-kernel layernorm implementation is not available"),
    ("sglang.srt._custom_ops", r"^Failed to import from custom_ar with ModuleNotFoundError"),
)
# logged for every launch: 0.4.7's default --init-expert-location is "trivial", not None
EPLB_NOTE = ("sglang.srt.server_args", r"^EPLB is enabled or init_expert_location is provided")
_WARNINGS = ((r"The pynvml package is deprecated", FutureWarning),)


class _Drop(logging.Filter):
    """Drops records whose message matches ``pattern``."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


def _add(logger_name: str, pattern: str) -> None:
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _Drop) and f.pattern.pattern == pattern for f in logger.filters):
        logger.addFilter(_Drop(pattern))


def install(*, eplb: bool = False) -> None:
    """Drop the noise in this process (idempotent). ``eplb``: EPLB was asked for, so its
    note is not noise."""
    for message, category in _WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for name, pattern in NOISE if eplb else (*NOISE, EPLB_NOTE):
        _add(name, pattern)


def use_our_prefix(level: int = logging.INFO) -> None:
    """``[sglang-ext] message`` for the ``sglang_ext`` loggers only (not sglang's)."""
    ours = logging.getLogger("sglang_ext")
    if any(getattr(h, "_sglang_ext", False) for h in ours.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[sglang-ext] %(message)s"))
    handler._sglang_ext = True  # type: ignore[attr-defined]
    ours.addHandler(handler)
    ours.setLevel(level)
    ours.propagate = False
