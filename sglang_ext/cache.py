"""sglang-ext's cache folder, and building a cached directory exactly once.

``$SGLANG_EXT_CACHE`` (default ``~/.cache/sglang_ext``) holds the patched sglang
overlay, the embedded default model and the pristine 0.4.7 tree used by tests.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["cache_dir", "build_once"]

logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    return Path(os.environ.get("SGLANG_EXT_CACHE", Path.home() / ".cache" / "sglang_ext"))


def _lock(f: IO[str], path: Path, dst: Path, deadline_s: float) -> None:
    """Take the exclusive lock on ``f`` within ``deadline_s``, or raise TimeoutError."""
    t_end = time.monotonic() + deadline_s
    waiting = False
    while True:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if not waiting:
                logger.info("waiting for another process to finish building %s", dst)
                waiting = True
            if time.monotonic() >= t_end:
                raise TimeoutError(
                    f"waited {deadline_s:.0f} s for the lock {path}: another process is "
                    f"building {dst} and still holds it (the lock dies with its holder: "
                    f"`fuser {path}` names it). A script that starts processes must guard "
                    f"its top level with `if __name__ == '__main__':`, or each child that "
                    f"imports it waits here for its parent"
                ) from None
            time.sleep(0.2)


def build_once(
    dst: Path, build: Callable[[Path], None], *, done: str, deadline_s: float = 900.0
) -> Path:
    """Return ``dst``, first building it if ``dst/done`` is missing.

    ``build(out)`` must create the directory ``out``. It runs under a file lock (one
    builder at a time, across processes), in a temporary folder beside ``dst`` that
    is renamed into place only once complete, so a failed build leaves nothing. A
    process that finds another building waits at most ``deadline_s`` for it (TimeoutError).
    """
    if (dst / done).is_file():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    path = dst.parent / f".{dst.name}.lock"
    with open(path, "w") as lock:
        _lock(lock, path, dst, deadline_s)
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
