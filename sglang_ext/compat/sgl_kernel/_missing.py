"""Placeholders for sgl_kernel ops the stand-in does not provide.

sglang 0.4.7 imports many sgl_kernel names at module level under ``if _is_cuda:``; the
placeholder lets those imports succeed and raises ``NotImplementedError`` naming the op and
the server flag that avoids it only when the op is CALLED.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

__all__ = ["missing", "hint_for", "missing_module_getattr"]

_ATTN = "use --attention-backend triton"
_QUANT = "serve an unquantized (bf16/fp16) checkpoint without --quantization"
_SPEC = "do not pass --speculative-algorithm"
_SAMPLING = "use --sampling-backend pytorch"

# exact op name -> what to do instead
_HINTS: dict[str, str] = {
    "min_p_sampling_from_probs": _SAMPLING,
    "top_k_renorm_prob": _SAMPLING,
    "top_p_renorm_prob": _SAMPLING,
    "top_k_top_p_sampling_from_probs": _SAMPLING,
    "top_p_sampling_from_probs": _SAMPLING,
    "top_k_top_p_sampling_from_logits": _SAMPLING,
    "merge_state": _ATTN,
    "merge_state_v2": _ATTN,
    "cutlass_mla_decode": _ATTN,
    "cutlass_mla_get_workspace_size": _ATTN,
    "moe_fused_gate": "it serves DeepSeek-V3-style biased grouped top-k, which no flag "
    "avoids; install sgl-kernel==0.1.7 for such models",
    "moe_sum": "install sgl-kernel==0.1.7",
    "tree_speculative_sampling_target_only": _SPEC,
    "verify_tree_greedy": _SPEC,
    "build_tree_kernel_efficient": _SPEC,
    "segment_packbits": _SPEC,
}
# name prefix -> what to do instead (first match wins)
_PREFIX_HINTS: tuple[tuple[str, str], ...] = (
    ("allreduce.", "pass --disable-custom-all-reduce and leave --enable-mscclpp off"),
    ("flash_attn.", _ATTN),
    ("fp8_", _QUANT),
    ("int8_", _QUANT),
    ("sgl_per_", _QUANT),
    ("awq_", _QUANT),
    ("bmm_fp8", _QUANT),
    ("qserve_", _QUANT),
    ("cutlass_", _QUANT),
    ("scaled_fp4", _QUANT),
    ("gptq_", _QUANT),
    ("marlin", _QUANT),
)
_DEFAULT_HINT = "install sgl-kernel==0.1.7 or turn off the feature that needs this op"


def hint_for(name: str) -> str:
    """The advice given when op ``name`` (``"x"`` or ``"submodule.x"``) is called."""
    if name in _HINTS:
        return _HINTS[name]
    for prefix, hint in _PREFIX_HINTS:
        if name.startswith(prefix):
            return hint
    return _DEFAULT_HINT


@functools.cache
def missing(name: str) -> Callable[..., None]:
    """A callable named ``name`` that raises ``NotImplementedError`` with advice when called."""
    message = (
        f"sgl_kernel.{name} is not available: sgl-kernel is not installed and sglang-ext "
        f"has no stand-in for it; {hint_for(name)}"
    )

    def _raise(*args: object, **kwargs: object) -> None:
        raise NotImplementedError(message)

    _raise.__name__ = _raise.__qualname__ = name.rsplit(".", 1)[-1]
    _raise.__doc__ = message
    _raise.__sglang_ext_missing__ = True  # type: ignore[attr-defined]
    return _raise


def missing_module_getattr(prefix: str) -> Callable[[str], Callable[..., None]]:
    """A module-level ``__getattr__`` handing out :func:`missing` ops named ``prefix + name``.

    Private and dunder names raise ``AttributeError`` so import machinery, ``pickle``,
    ``inspect`` and ``hasattr(mod, "__path__")``-style probes see an ordinary module.
    """

    def __getattr__(name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(
                f"module 'sgl_kernel{'.' + prefix[:-1] if prefix else ''}' "
                f"has no attribute {name!r}"
            )
        return missing(prefix + name)

    return __getattr__
