"""The pristine sglang 0.4.7 tree, fetched from PyPI once and cached.

Tests copy it before changing anything, so patching is always checked against
the release itself rather than against whatever sglang is installed.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from sglang_ext import SGLANG_VERSION
from sglang_ext.cache import build_once, cache_dir

__all__ = ["pristine_sglang"]


def pristine_sglang() -> Path:
    """Directory of the unpacked ``sglang/`` package of the PyPI release."""

    def build(out: Path) -> None:
        dl = out.parent / "dl"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                "--only-binary=:all:",
                f"sglang=={SGLANG_VERSION}",
                "-d",
                str(dl),
            ],
            check=True,
        )
        (wheel,) = dl.glob("sglang-*.whl")
        with zipfile.ZipFile(wheel) as z:
            z.extractall(out, [n for n in z.namelist() if n.startswith("sglang/")])

    root = build_once(cache_dir() / f"pristine-{SGLANG_VERSION}", build, done="sglang/version.py")
    return root / "sglang"
