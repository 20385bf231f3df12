"""The patched copy that launch_server puts first on sys.path: patched, and byte-compiled.

Every server process imports sglang from this copy; with PYTHONDONTWRITEBYTECODE set (as on
this project's machines) nothing would ever write its bytecode, and each process would
compile every module it imports again.  The reference for "compiled right" is CPython's own
rule for a valid timestamp pyc (magic, flags 0, source mtime and size) and ``compile`` of
the patched source.
"""

from __future__ import annotations

import filecmp
import importlib.util
import marshal
import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_ext.patching import overlay, source


def _changed_files(a: Path, b: Path) -> list[Path]:
    """Relative paths of the .py files under ``a`` whose content differs in ``b``."""
    out = []
    for path in a.rglob("*.py"):
        rel = path.relative_to(a)
        other = b / rel
        if other.is_file() and not filecmp.cmp(path, other, shallow=False):
            out.append(rel)
    return out


def _check_pyc(py: Path) -> None:
    pyc = Path(importlib.util.cache_from_source(str(py)))
    assert pyc.is_file(), f"no bytecode for {py}"
    data = pyc.read_bytes()
    magic, flags, mtime, size = data[:4], *struct.unpack("<3I", data[4:16])
    st = py.stat()
    assert magic == importlib.util.MAGIC_NUMBER, f"{pyc}: another interpreter's magic"
    assert flags == 0, f"{pyc}: not a timestamp pyc (flags {flags})"
    assert (mtime, size) == (int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF), (
        f"{pyc} is stale for {py}: Python would compile the source again"
    )
    assert marshal.loads(data[16:]) == compile(
        py.read_bytes(), str(py), "exec", dont_inherit=True
    ), f"{pyc} does not hold the code of {py}"


def test_patched_copy_is_patched_and_byte_compiled(tmp_path, monkeypatch, series):
    monkeypatch.setenv("SGLANG_EXT_CACHE", str(tmp_path))
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    root = overlay.ensure_patched_sglang(series)
    installed = source.find_installed_sglang()
    if root is None:  # the installed sglang carries the series itself: nothing to build
        assert source.status(installed, series).state is source.TreeState.APPLIED
        return
    copy = root / "sglang"
    changed = _changed_files(copy, installed)
    assert "srt/models/qwen3_moe.py" in {str(p) for p in changed}, changed
    for rel in [*changed, Path("__init__.py"), Path("srt/server_args.py")]:
        _check_pyc(copy / rel)
    # a second call finds the copy built and returns it as it is
    before = (copy / "__init__.py").stat().st_mtime_ns
    assert overlay.ensure_patched_sglang(series) == root
    assert (copy / "__init__.py").stat().st_mtime_ns == before


UNGUARDED = """
import multiprocessing
import sys
from pathlib import Path

from sglang_ext.cache import build_once
from sglang_ext.patching import overlay

root = Path(sys.argv[1])
# what Python 3.12's compileall does itself (and many CUDA programs set): workers come from a
# forkserver, and each imports the main script
multiprocessing.set_start_method("forkserver", force=True)


def build(out):
    (out / "pkg").mkdir(parents=True)
    for i in range(4):
        (out / "pkg" / f"m{i}.py").write_text(f"X = {i}\\n")
    overlay.byte_compile(out / "pkg", root / "pkg")


build_once(root, build, done="pkg/m0.py", deadline_s=30)
print("built", flush=True)
"""


def test_byte_compile_from_a_script_without_a_main_guard(tmp_path):
    """A user's script that builds at its top level (no ``if __name__ == '__main__'``):
    compileall's forkserver workers import the caller's ``__main__``, so compiling in the
    caller's process (Python 3.12, or 3.11 with the forkserver start method, as here) ran the
    script again in each worker, which then waited for the lock its parent held (a hang on
    the lent GPU).  The build must finish, with bytecode that
    names the files where they end up."""
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    root = tmp_path / "root"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the unguarded build hung for 120 s:\n{out[-2000:]}")
    assert proc.returncode == 0 and "built" in out, out[-2000:]
    for i in range(4):
        py = root / "pkg" / f"m{i}.py"
        _check_pyc(py)
        code = marshal.loads(Path(importlib.util.cache_from_source(str(py))).read_bytes()[16:])
        assert code.co_filename == str(py), code.co_filename
