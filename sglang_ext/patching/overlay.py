"""A patched copy of the installed sglang, for processes that must run patched.

``launch_server`` must have the series in force in every server process, the
ranks sglang spawns included, without writing into the user's site-packages. If
the installed sglang already carries the series, it is used as is. Otherwise the
installed package is copied once into ``$SGLANG_EXT_CACHE/overlay/<series
sha>/sglang`` (default cache ``~/.cache/sglang_ext``), the series is applied to
the copy, and the copy's parent directory is put first on ``sys.path`` and on
``PYTHONPATH``: spawned ranks (multiprocessing 'spawn') inherit both.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from sglang_ext.cache import build_once, cache_dir
from sglang_ext.patching import source

__all__ = ["ensure_patched_sglang", "activate", "byte_compile"]

logger = logging.getLogger(__name__)


def ensure_patched_sglang(series: source.PatchSeries | None = None) -> Path | None:
    """Directory to prepend to sys.path for a patched sglang, or None if the
    installed sglang is already patched with this series."""
    series = series or source.PatchSeries.load()
    installed = source.find_installed_sglang()
    st = source.status(installed, series)
    if st.state is source.TreeState.APPLIED:
        return None
    if st.state is source.TreeState.INTERRUPTED:  # the detail says what to run
        raise source.PatchError(f"the installed sglang at {installed} is interrupted: {st.detail}")
    if st.state is not source.TreeState.PRISTINE:
        raise source.PatchError(
            f"the installed sglang at {installed} is {st.state.value} ({st.detail}); "
            f"reinstall sglang=={source.SGLANG_VERSION}"
        )

    def build(out: Path) -> None:
        logger.info("building a patched copy of %s in %s", installed, out)
        shutil.copytree(installed, out / "sglang", ignore=shutil.ignore_patterns("__pycache__"))
        source.apply(out / "sglang", series)
        # Byte-compile the copy once (3 s): with PYTHONDONTWRITEBYTECODE set, or a cache
        # another user owns, every server process would compile what it imports again
        # (about 2 s of CPU per process, 4 processes per TP-2 server).
        # (ddir: the code objects name the files where they will be, not this temp folder)
        byte_compile(out / "sglang", root / "sglang")

    root = cache_dir() / "overlay" / series.digest()[:16]
    return build_once(root, build, done=f"sglang/{source.STAMP_NAME}")


def byte_compile(tree: Path, ddir: Path, timeout_s: float = 600.0) -> None:
    """``python -m compileall -j 0`` of ``tree`` in a child process (its own group, killed
    past ``timeout_s``): ``ddir`` is where the files will be. In a child because compileall's
    worker pool is a forkserver one, whose workers import the caller's ``__main__``: a script
    without a ``__main__`` guard that builds the overlay at its top level would otherwise run
    again in each worker and wait for its own build's lock."""
    from sglang_ext.perf.serving.server_process import run_in_group

    cmd = [sys.executable, "-m", "compileall", "-q", "-j", "0", "-d", str(ddir), str(tree)]
    rc = run_in_group(cmd, timeout_s=timeout_s)
    if rc is None:
        raise TimeoutError(f"byte-compiling {tree} took over {timeout_s:.0f} s: {cmd}")
    if rc:
        logger.warning("some files of %s did not byte-compile (compileall exit %d)", tree, rc)


def activate(path: Path | None) -> None:
    """Put ``path`` first on sys.path and PYTHONPATH (before sglang is imported)."""
    if path is None:
        return
    if "sglang" in sys.modules and not sys.modules["sglang"].__file__.startswith(str(path)):
        raise RuntimeError("sglang was imported before the patched copy was activated")
    sys.path.insert(0, str(path))
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(path) + (os.pathsep + old if old else "")
