"""Staging folders: removed when their run ends however it ends, never while it lives."""

import os
import selectors
import subprocess
import sys
import time

import pytest

from sglang_ext.patching.staging import STAGE_PREFIX, remove_stale_stages, stage_dir

HOLD = """
import sys, time
from sglang_ext.patching.staging import stage_dir
with stage_dir() as p:
    print(p, flush=True)
    time.sleep(60)
"""


def holder(tmp) -> tuple[subprocess.Popen, str]:
    """A child that holds a staging folder under ``tmp`` until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD], env=dict(os.environ, TMPDIR=str(tmp)),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout=60):
            proc.kill()
            proc.wait(10)
            pytest.fail("the child holding a staging folder did not start within 60 s")
    line = proc.stdout.readline().strip()  # empty if the child died
    assert line.startswith(str(tmp)), line
    return proc, line


def test_live_kept_dead_removed(tmp_path):
    live, live_dir = holder(tmp_path)
    dead, dead_dir = holder(tmp_path)
    try:
        dead.kill()
        dead.wait(10)
        dead.stdout.close()
        young = tmp_path / f"{STAGE_PREFIX}unowned"  # its owner has not locked it yet
        young.mkdir()
        other = tmp_path / "not_ours"
        other.mkdir()
        assert remove_stale_stages(tmp_path) == [tmp_path / os.path.basename(dead_dir)]
        assert os.path.isdir(live_dir), "the folder of a live run was removed"
        assert young.is_dir() and other.is_dir()
        old = time.time() - 2 * 3600
        os.utime(young, (old, old))  # an owner that died before taking the lock
        assert remove_stale_stages(tmp_path) == [young]
    finally:
        live.kill()
        live.wait(10)
        live.stdout.close()
    assert remove_stale_stages(tmp_path) == [tmp_path / os.path.basename(live_dir)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_ours"]


def test_removed_on_ctrl_c(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    with pytest.raises(KeyboardInterrupt), stage_dir() as p:
        (p / "x").write_text("staged")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
