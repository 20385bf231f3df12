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
import struct
from pathlib import Path

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
