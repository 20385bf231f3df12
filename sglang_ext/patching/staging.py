"""Staging folders (``$TMPDIR/sglang_ext_stage_*``) that never outlive their run.

Patches are tried on a copy of the files they touch in a staging folder. The
folder is removed in ``finally`` (Ctrl-C included); a SIGKILLed run cannot do
that, so every run first removes the folders of dead runs. A live folder is
told from a dead one by an ``flock`` its owner holds on it for as long as it
lives (the kernel drops it when the owner dies, however it dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["STAGE_PREFIX", "remove_stale_stages", "stage_dir"]

logger = logging.getLogger(__name__)

STAGE_PREFIX = "sglang_ext_stage_"
_OWNED = ".owned"  # written once the owner holds the lock
_UNOWNED_MAX_AGE_S = 3600.0  # a folder whose owner died before taking the lock


@contextlib.contextmanager
def stage_dir() -> Iterator[Path]:
    """A fresh staging folder, locked for as long as the ``with`` block runs."""
    path = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX))
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleaner inspects it
        (path / _OWNED).write_text(f"{os.getpid()}\n")
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(fd)


def remove_stale_stages(tmp: str | Path | None = None) -> list[Path]:
    """Remove the staging folders of dead runs under ``tmp`` (default: the temp
    dir); return what was removed. Folders of live runs, and folders that cannot
    be read (another user's), are left alone."""
    removed = []
    for path in Path(tmp or tempfile.gettempdir()).glob(STAGE_PREFIX + "*"):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            owned = (path / _OWNED).exists()
            if owned or time.time() - path.stat().st_mtime > _UNOWNED_MAX_AGE_S:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(path)
        except OSError:
            continue
        finally:
            os.close(fd)
    if removed:
        logger.info("removed %d staging folder(s) left by interrupted runs", len(removed))
    return removed
