"""sglang-ext's cache folder, and building a cached directory exactly once.

``$SGLANG_EXT_CACHE`` (default ``~/.cache/sglang_ext``) holds the patched sglang
overlay, the embedded default model and the pristine 0.4.7 tree used by tests.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["cache_dir", "build_once"]


def cache_dir() -> Path:
    return Path(os.environ.get("SGLANG_EXT_CACHE", Path.home() / ".cache" / "sglang_ext"))


def build_once(dst: Path, build: Callable[[Path], None], *, done: str) -> Path:
    """Return ``dst``, first building it if ``dst/done`` is missing.

    ``build(out)`` must create the directory ``out``. It runs under a file lock (one
    builder at a time, across processes), in a temporary folder beside ``dst`` that
    is renamed into place only once complete, so a failed build leaves nothing.
    """
    if (dst / done).is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(dst.parent / f".{dst.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (dst / done).is_file():
            return dst
        tmp = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}-"))
        try:
            build(tmp / "out")
            shutil.rmtree(dst, ignore_errors=True)
            (tmp / "out").rename(dst)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dst
