"""The pristine sglang 0.4.7 tree, fetched from PyPI once and cached.

Tests copy it before changing anything, so patching is always checked against
the release itself rather than against whatever sglang is installed.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from sglang_ext import SGLANG_VERSION
from sglang_ext.patching.overlay import cache_dir

__all__ = ["pristine_sglang"]


def pristine_sglang() -> Path:
    """Directory of the unpacked ``sglang/`` package of the PyPI release."""
    root = cache_dir() / f"pristine-{SGLANG_VERSION}"
    tree = root / "sglang"
    if (tree / "version.py").is_file():
        return tree
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".pristine-{SGLANG_VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (tree / "version.py").is_file():
            return tree
        tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=".pristine-"))
        try:
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                 "--only-binary=:all:", f"sglang=={SGLANG_VERSION}", "-d", str(tmp)],
                check=True,
            )
            (wheel,) = tmp.glob("sglang-*.whl")
            with zipfile.ZipFile(wheel) as z:
                z.extractall(tmp / "x", [n for n in z.namelist() if n.startswith("sglang/")])
            shutil.rmtree(root, ignore_errors=True)
            (tmp / "x").rename(root)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return tree
