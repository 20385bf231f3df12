"""Adapter for ``sglang.bench_serving``: reuse its request functions without its globals.

``bench_serving`` reads a module-level ``args`` (``disable_stream``,
``disable_ignore_eos``, ``return_logprob``) inside its request functions.  We set
exactly those fields for the duration of a run and restore whatever was there before,
so nothing leaks into other users of the module.  sglang is imported lazily so that
GPU-only benches run where sglang is not installed.
"""

from __future__ import annotations

import argparse
import contextlib
import threading
from collections.abc import Iterator
from types import ModuleType

__all__ = ["bench_serving_module", "bench_serving_args", "REQUEST_FUNCS"]

# backend name -> (function name in bench_serving, endpoint path)
REQUEST_FUNCS = {
    "sglang": ("async_request_sglang_generate", "/generate"),
    "openai": ("async_request_openai_completions", "/v1/completions"),
}
_LOCK = threading.Lock()
_MISSING = object()


def bench_serving_module() -> ModuleType:
    try:
        from sglang import bench_serving
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(
            "the load generator reuses sglang.bench_serving; install sglang==0.4.7 "
            "(pip install -e '.[dev]')"
        ) from e
    return bench_serving


@contextlib.contextmanager
def bench_serving_args(
    *, stream: bool = True, ignore_eos: bool = True, return_logprob: bool = False
) -> Iterator[ModuleType]:
    """Set ``bench_serving.args`` for one run; one run at a time per process."""
    bs = bench_serving_module()
    if not _LOCK.acquire(blocking=False):
        raise RuntimeError("one load run at a time per process: bench_serving.args is global")
    old = getattr(bs, "args", _MISSING)
    bs.args = argparse.Namespace(
        disable_stream=not stream,
        disable_ignore_eos=not ignore_eos,
        return_logprob=return_logprob,
    )
    try:
        yield bs
    finally:
        if old is _MISSING:
            del bs.args
        else:
            bs.args = old
        _LOCK.release()
