"""ServerProcess with a fake server command: ready wait, failures, no leftover processes."""

import os
import sys
import textwrap

import pytest

from sglang_ext.perf.server_process import ServerProcess, free_port, http_ok

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = {"PYTHONPATH": ROOT}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); read its state
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


def test_fake_server_whole_group_stopped(tmp_path):
    # the "server" forks a child that ignores SIGTERM; both must be gone afterwards
    child_pid = tmp_path / "child.pid"
    port = free_port()
    script = textwrap.dedent(f"""
        import signal, subprocess, sys
        c = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        open({str(child_pid)!r}, "w").write(str(c.pid))
        from sglang_ext.perf.fake_server import main
        main(["--port", "{port}"])
    """)
    url = f"http://127.0.0.1:{port}"
    srv = ServerProcess(
        [sys.executable, "-c", script], url, env=ENV, ready_timeout_s=60, stop_timeout_s=1.0
    )
    with srv:
        assert http_ok(url + "/health")
        leader = srv.proc.pid
        child = int(child_pid.read_text())
        assert _alive(child)
    assert srv.startup_s is not None and srv.startup_s > 0
    assert not http_ok(url + "/health")
    assert not _alive(leader) and not _alive(child)


def test_crash_during_startup_reports_log():
    srv = ServerProcess(
        [sys.executable, "-c", "print('bad flag --foo'); raise SystemExit(3)"],
        f"http://127.0.0.1:{free_port()}",
    )
    with pytest.raises(RuntimeError, match="(?s)code 3.*bad flag --foo"):
        with srv:
            pass


def test_ready_timeout_kills():
    srv = ServerProcess(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        f"http://127.0.0.1:{free_port()}",
        ready_timeout_s=0.5,
    )
    with pytest.raises(TimeoutError, match="ready_timeout_s"):
        with srv:
            pass
    assert srv.proc is None
