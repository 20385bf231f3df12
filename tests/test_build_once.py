"""sglang_ext.cache.build_once: one builder at a time, nothing half-built, and a bounded wait.

The reference for the wait is the lock itself: a second process holds the lock file with
``flock`` (as a concurrent builder does) and the call must give up within its deadline with
an error that names the lock, instead of waiting for ever.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from sglang_ext.cache import build_once

HOLD = """
import fcntl, sys, time
f = open(sys.argv[1], "w")
fcntl.flock(f, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(60)
"""


def test_builds_once_and_a_failed_build_leaves_nothing(tmp_path):
    dst = tmp_path / "thing"
    calls = []

    def build(out):
        calls.append(out)
        out.mkdir()
        (out / "done").write_text("x")

    assert build_once(dst, build, done="done") == dst
    assert build_once(dst, build, done="done") == dst
    assert len(calls) == 1 and (dst / "done").read_text() == "x"

    def broken(out):
        out.mkdir()
        (out / "half").write_text("x")
        raise RuntimeError("boom")

    other = tmp_path / "other"
    with pytest.raises(RuntimeError, match="boom"):
        build_once(other, broken, done="done")
    assert not other.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".other-")] == []


def test_a_held_lock_times_out_with_a_message_naming_it(tmp_path):
    dst = tmp_path / "thing"
    lock = tmp_path / ".thing.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(lock)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result: dict = {}

        def call():
            t0 = time.monotonic()
            try:
                build_once(dst, lambda out: out.mkdir(), done="done", deadline_s=1.0)
            except Exception as e:  # noqa: BLE001 - the test inspects it
                result["error"] = e
            result["s"] = time.monotonic() - t0

        t = threading.Thread(target=call, daemon=True)
        t.start()
        t.join(timeout=20)
        assert not t.is_alive(), "build_once still waiting on a held lock after 20 s"
        err = result.get("error")
        assert isinstance(err, TimeoutError), result
        assert str(lock) in str(err) and "__main__" in str(err)
        assert 1.0 <= result["s"] < 5.0, result
        assert not dst.exists()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    # once the holder is gone the lock is free: the build runs
    built = build_once(dst, lambda out: (out.mkdir(), (out / "done").write_text("")), done="done")
    assert (built / "done").is_file()
