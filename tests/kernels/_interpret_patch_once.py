"""Makes Triton's interpreter patch ``triton.language`` once per module instead of per call.

Triton 3.3's interpreter calls ``_patch_lang(fn)`` on every kernel launch and on every call
of a ``@triton.jit`` helper inside a kernel; each call walks ``tl``, ``tl.core``,
``tl.tensor`` and ``tl.math`` with ``inspect.getmembers`` and re-binds the same builtins to
the one global ``interpreter_builder``. Nothing ever unpatches, and a second pass over a
module binds nothing new (its builtins are already wrapped), so repeating it only costs time:
about a fifth of the interpreter cases' run time here. ``install()`` wraps ``_patch_lang``
so that each set of language modules a function sees is patched once; the first call for a
set runs Triton's own code unchanged (its assertion included).
"""

from __future__ import annotations

import inspect


def install() -> None:
    """Call after ``TRITON_INTERPRET=1`` is set and before the first kernel runs."""
    import triton.language as tl
    from triton.runtime import interpreter

    original = getattr(interpreter, "_patch_lang", None)
    if original is None or getattr(original, "_patch_once", False):
        return  # another Triton layout, or installed already: leave Triton as it is
    done: set[frozenset[str]] = set()

    def patch_lang_once(fn) -> None:
        langs = frozenset(
            value.__name__
            for value in fn.__globals__.values()
            if inspect.ismodule(value) and value in (tl, tl.core)
        )
        if langs and langs in done:
            return
        original(fn)
        done.add(langs)

    patch_lang_once._patch_once = True
    interpreter._patch_lang = patch_lang_once
