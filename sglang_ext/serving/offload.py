"""Keep big CPU work (tokenising a multi-megabyte prompt) off the server's event loop.

sglang 0.4.7 tokenises every prompt inline in its asyncio loop, so one 5 MB prompt
stalls every other request for seconds. Work on inputs larger than
``OFFLOAD_MIN_CHARS`` runs in a worker thread instead (HF fast tokenizers release the
GIL while encoding); small inputs stay inline, where a thread hop would only add
latency.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["OFFLOAD_MIN_CHARS", "encode", "run"]

T = TypeVar("T")

OFFLOAD_MIN_CHARS = 65536
"""Inputs of at least this many characters (or body bytes) are handled in a thread."""


async def run(fn: Callable[..., T], *args: Any, size: int, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)``, in a worker thread when ``size >= OFFLOAD_MIN_CHARS``."""
    if size < OFFLOAD_MIN_CHARS:
        return fn(*args, **kwargs)
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


async def encode(tokenizer: Any, text: str) -> list[int]:
    """``tokenizer.encode(text)``, off the event loop for a long text."""
    return await run(tokenizer.encode, text, size=len(text))
