"""ServerProcess and the port chooser, with fake servers: ports, readiness, failures, cleanup.

Every fake "server" here is a short Python script; a check that fails must fail fast
(seconds), so the time bounds below are far above a correct run and far below the
ready timeouts that a missing check would run into.
"""

import http.server
import os
import socket
import sys
import textwrap
import threading
import time

import psutil
import pytest

from sglang_ext.net import (
    PortInUseError,
    ephemeral_range,
    pick_port,
    port_candidates,
    port_is_free,
)
from sglang_ext.perf.serving.server_process import (
    ServerBindError,
    ServerProcess,
    ServerStartError,
    http_get,
    http_ok,
    run_in_group,
)
from tests._support.paths import REPO_ROOT

ENV = {"PYTHONPATH": str(REPO_ROOT)}
FAKE = "from sglang_ext.perf.serving.fake_server import main; main(['--port', '{port}'])"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _py(script: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(script)]


# -- the port chooser ----------------------------------------------------------------


def test_ephemeral_range_from_file_and_fallback(tmp_path):
    f = tmp_path / "range"
    f.write_text("20000\t40000\n")
    assert ephemeral_range(f) == (20000, 40000)
    # absent (not Linux) or garbage: Linux's default start and IANA's end both count
    assert ephemeral_range(tmp_path / "absent") == (32768, 65535)
    (tmp_path / "bad").write_text("oops")
    assert ephemeral_range(tmp_path / "bad") == (32768, 65535)


@pytest.mark.parametrize("eph", [(32768, 60999), (20000, 40000), (32768, 65535), (1024, 65535)])
def test_candidates_avoid_the_ephemeral_range(eph):
    cands = port_candidates(eph)
    assert len(cands) >= 100 and cands.start >= 1024 and cands.stop <= 65536
    if eph != (1024, 65535):  # no room outside: any port, the retry covers a collision
        lo, hi = eph
        assert cands.stop <= lo or cands.start > hi


def test_pick_port_is_free_and_outside_this_machines_range():
    lo, hi = ephemeral_range()
    for _ in range(20):
        p = pick_port()
        assert not lo <= p <= hi
        with socket.socket() as s:  # bindable right now, as servers bind (SO_REUSEADDR:
            # without it a port with a connection in TIME_WAIT from an earlier test's
            # server refuses the bind, which failed one fresh-clone run)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", p))


class _Seq:
    """An rng whose choices are scripted."""

    def __init__(self, ports):
        self.ports = list(ports)

    def choice(self, _candidates):
        return self.ports.pop(0)


def test_pick_port_skips_held_and_excluded_ports():
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind
    held.bind(("127.0.0.1", pick_port()))
    held.listen()
    taken = held.getsockname()[1]
    free1, free2 = pick_port(), pick_port()
    try:
        assert not port_is_free(taken)
        assert pick_port(rng=_Seq([taken, free1])) == free1
        assert pick_port(rng=_Seq([free1, free2]), exclude={free1}) == free2
        with pytest.raises(PortInUseError, match="no free port"):
            pick_port(rng=_Seq([taken] * 3), tries=3)
    finally:
        held.close()


# -- probes with a total deadline ----------------------------------------------------


def test_http_get_has_a_total_deadline():
    """A server that trickles one byte every 0.2 s never trips a per-socket-op timeout."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    stop = threading.Event()

    def trickle():
        conn, _ = lsock.accept()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        while not stop.wait(0.2):
            try:
                conn.sendall(b"x")
            except OSError:
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    t0 = time.monotonic()
    try:
        assert http_get(f"http://127.0.0.1:{lsock.getsockname()[1]}/health", timeout=1.0) is None
        assert time.monotonic() - t0 < 5
    finally:
        stop.set()
        lsock.close()


# -- ServerProcess ---------------------------------------------------------------------


def test_fake_server_whole_group_stopped(tmp_path):
    # the "server" forks a child that ignores SIGTERM; both must be gone afterwards
    child_pid = tmp_path / "child.pid"
    script = f"""
        import signal, subprocess, sys
        c = subprocess.Popen([sys.executable, "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
        open({str(child_pid)!r}, "w").write(str(c.pid))
        {FAKE}
    """
    srv = ServerProcess(
        _py(script), "http://127.0.0.1:{port}", env=ENV, ready_timeout_s=60, stop_timeout_s=1.0
    )
    with srv:
        lo, hi = ephemeral_range()
        assert not lo <= srv.port <= hi and srv.cmd[-1].count(str(srv.port)) == 1
        assert http_ok(srv.base_url + "/health")
        leader = srv.proc.pid
        child = int(child_pid.read_text())
        assert _alive(child)
    assert srv.startup_s is not None and srv.startup_s > 0
    assert not http_ok(srv.base_url + "/health")
    assert not _alive(leader) and not _alive(child)


def test_crash_during_startup_reports_log():
    srv = ServerProcess(
        [sys.executable, "-c", "print('bad flag --foo'); raise SystemExit(3)"],
        f"http://127.0.0.1:{pick_port()}",
    )
    with pytest.raises(RuntimeError, match="(?s)code 3.*bad flag --foo"):
        with srv:
            pass


def test_ready_timeout_kills():
    srv = ServerProcess(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        f"http://127.0.0.1:{pick_port()}",
        ready_timeout_s=0.5,
    )
    with pytest.raises(TimeoutError, match="ready_timeout_s"):
        with srv:
            pass
    assert srv.proc is None


class _Foreign(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        body = b'{"model_path": "/the/other/model"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def foreign_http():
    """Another HTTP server (in this test process) answering 200 to everything."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", pick_port()), _Foreign)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_port_held_by_another_http_server_fails_fast(foreign_http):
    t0 = time.monotonic()
    srv = ServerProcess(
        _py("import time; time.sleep(600)"), f"http://127.0.0.1:{foreign_http}", ready_timeout_s=60
    )
    with pytest.raises(ServerBindError, match=f"port {foreign_http} .*in use by pid {os.getpid()}"):
        with srv:
            pass
    assert time.monotonic() - t0 < 10


def test_listener_outside_the_servers_tree_is_not_the_server(tmp_path):
    """The command starts an HTTP server that is reparented away (not in its tree): it
    answers 200 with the right model, but it is not the server that was started."""
    port = pick_port()
    pid_file = tmp_path / "orphan.pid"
    orphan = f"from sglang_ext.perf.serving.fake_server import main; main(['--port', '{port}'])"
    script = f"""
        import os, subprocess, sys, time
        if os.fork() == 0:  # the middle process exits at once: its child is reparented
            p = subprocess.Popen([sys.executable, "-c", {orphan!r}], start_new_session=True)
            open({str(pid_file)!r}, "w").write(str(p.pid))
            os._exit(0)
        time.sleep(600)
    """
    srv = ServerProcess(
        _py(script),
        f"http://127.0.0.1:{port}",
        env=ENV,
        ready_timeout_s=60,
        expect_model="fake",
    )
    try:
        with pytest.raises(ServerBindError, match="no process of the server .* listens on it"):
            with srv:
                pass
    finally:
        for _ in range(50):
            if pid_file.exists() and pid_file.read_text():
                break
            time.sleep(0.1)
        psutil.Process(int(pid_file.read_text())).kill()


def test_server_that_names_another_model_is_refused():
    srv = ServerProcess(
        _py(FAKE),
        "http://127.0.0.1:{port}",
        env=ENV,
        ready_timeout_s=60,
        expect_model="/models/mine",
    )
    with pytest.raises(ServerStartError, match="serves model 'fake', not '/models/mine'"):
        with srv:
            pass
    assert srv.proc is None


def test_bind_error_in_the_log_restarts_on_another_port(tmp_path):
    state = tmp_path / "first"
    script = f"""
        import os, time
        if not os.path.exists({str(state)!r}):
            open({str(state)!r}, "w").close()
            print("ERROR: [Errno 98] error while attempting to bind on address "
                  "('127.0.0.1', {{port}}): address already in use", flush=True)
            time.sleep(600)
        {FAKE}
    """
    t0 = time.monotonic()
    with ServerProcess(_py(script), "http://127.0.0.1:{port}", env=ENV, ready_timeout_s=60) as srv:
        assert len(srv.ports_tried) == 2 and srv.ports_tried[0] != srv.ports_tried[1]
        assert srv.port == srv.ports_tried[1] and http_ok(srv.base_url + "/health")
    assert time.monotonic() - t0 < 30


def _start_fails(script: str, error: type[Exception], match: str, within_s: float):
    """Starts ``script`` as a server on a free port: the start must raise ``error`` matching
    ``match`` within ``within_s`` (far below the 60 s ready timeout, so the check, not the
    timeout, ended it). Returns the ServerProcess."""
    t0 = time.monotonic()
    srv = ServerProcess(_py(script), f"http://127.0.0.1:{pick_port()}", ready_timeout_s=60)
    with pytest.raises(error, match=match):
        srv.start()
    assert time.monotonic() - t0 < within_s
    return srv


def test_bind_error_with_a_fixed_port_is_not_retried():
    script = "import time; print('[Errno 98] address already in use', flush=True); time.sleep(600)"
    srv = _start_fails(script, ServerBindError, "could not bind port", within_s=10)
    assert len(srv.ports_tried) == 1 and srv.proc is None


def test_traceback_in_the_log_fails_at_once():
    script = """
        import time, traceback
        try:
            raise ValueError("boom in the loader")
        except ValueError:
            traceback.print_exc()
        time.sleep(600)
    """
    _start_fails(script, ServerStartError, "(?s)traceback while starting.*boom in the loader", 10)


def test_dead_child_fails_at_once_naming_it():
    script = """
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c",
            "import setproctitle, time; setproctitle.setproctitle('sglang::scheduler_TP0');"
            " time.sleep(1.5)"])
        time.sleep(600)
    """
    _start_fails(script, ServerStartError, "child process sglang::scheduler_TP0 .* died", 15)


def test_short_lived_fork_of_a_watched_child_is_not_its_death():
    # sglang's scheduler forks helpers (subprocess, compile workers): between fork and
    # exec they carry the scheduler's title; their exit must not read as the scheduler dying,
    # also when the watcher first sees one while it exits (its command line is then empty
    # and psutil falls back to the 15-character comm "sglang::schedul"). Short-lived forks
    # in a loop hit that window often (a 0.3 s fork every 0.3 s did once in a full suite run).
    sched = (
        "import os, setproctitle, time; setproctitle.setproctitle('sglang::scheduler_TP0')\n"
        "while True:\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os._exit(0)\n"
        "    os.waitpid(pid, 0)\n"
    )
    script = f"""
        import subprocess, sys, time
        subprocess.Popen([sys.executable, "-c", {sched!r}])
        time.sleep(3)
        {FAKE}
    """
    srv = ServerProcess(_py(script), "http://127.0.0.1:{port}", env=ENV, ready_timeout_s=60)
    with srv:
        assert http_ok(srv.base_url + "/health")


def test_run_in_group_leaves_nothing_behind(tmp_path):
    pid_file = tmp_path / "bg.pid"
    script = f"""
        import subprocess, sys
        p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        open({str(pid_file)!r}, "w").write(str(p.pid))
    """
    assert run_in_group(_py(script), timeout_s=60) == 0
    assert not _alive(int(pid_file.read_text()))
    t0 = time.monotonic()
    assert run_in_group(_py("import time; time.sleep(600)"), timeout_s=0.5) is None
    assert time.monotonic() - t0 < 15
