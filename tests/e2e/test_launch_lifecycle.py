"""``launch_server``'s own lifecycle on the real patched CPU server (TP 1, default model).

A port it cannot bind (held by a silent listener, or by another HTTP server) ends it
non-zero within 30 s, naming the port, never claiming to be ready. A scheduler SIGKILLed
while it starts ends it within 30 s, naming the process. (SIGTERM after ready ending it
with rc 0 is checked on the shared TP 1 server, tests/e2e/test_server.py.) ``--help``
builds nothing. No case leaves a process behind: every process the
launcher starts is recorded (its process tree, polled while it runs, plus every process
whose environment carries the test's tag: sglang's renamed processes lose their readable
environment to setproctitle), and none of them may survive.
"""

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import psutil
import pytest

from sglang_ext.net import pick_port

pytestmark = pytest.mark.slow

LAUNCH = [sys.executable, "-m", "sglang_ext.launch_server"]
FAIL_S = 30.0  # what the launcher promises
START_S = 300.0  # a loaded 2-core machine; well below pytest's 600 s


def _tagged(tag: str) -> list[psutil.Process]:
    out = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("SGLANG_EXT_TEST_TAG") == tag:
                out.append(p)
        except psutil.Error:
            continue
    return out


def _family(pid: int) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        return [leader, *leader.children(recursive=True)]
    except psutil.Error:
        return []


def _assert_nothing_left(tag: str, seen: list[psutil.Process] = ()) -> None:
    left = [*_tagged(tag), *(p for p in seen if p.is_running())]
    _, alive = psutil.wait_procs(left, timeout=15)
    for p in alive:
        p.kill()
    assert not alive, f"processes left behind: {[(p.pid, p.name()) for p in alive]}"


@pytest.fixture
def tag():
    t = uuid.uuid4().hex
    yield t
    for p in _tagged(t):  # a failed test must not leave them either
        try:
            p.kill()
        except psutil.Error:
            pass


def _launch(args, tag, log_path, **kw) -> subprocess.Popen:
    env = {**os.environ, "SGLANG_EXT_TEST_TAG": tag, **kw.pop("env", {})}
    with open(log_path, "wb") as f:
        return subprocess.Popen(
            LAUNCH + args, stdout=f, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def _claims_ready(log: str) -> bool:
    return "ready to roll" in log or "server ready at" in log


def _wait_exit(proc: subprocess.Popen, timeout: float) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        pytest.fail(f"launch_server still running after {timeout:.0f} s")


class _Answers(http.server.BaseHTTPRequestHandler):
    """Another HTTP server: 200 with a model-info body for every GET and POST."""

    def _ok(self):
        body = b'{"model_path": "/somebody/else", "is_generation": true, "text": "hi"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _ok  # noqa: N815 - http.server's names

    def log_message(self, *args):
        pass


def _silent_listener():
    import socket

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", pick_port()))
    s.listen()  # accepts into the backlog, never answers
    return s.getsockname()[1], s.close


def _foreign_http():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", pick_port()), _Answers)
    threading.Thread(target=srv.serve_forever, daemon=True).start()

    def close():
        srv.shutdown()
        srv.server_close()

    return srv.server_address[1], close


@pytest.mark.parametrize("holder", [_silent_listener, _foreign_http], ids=["silent", "http"])
def test_port_in_use_fails_fast_naming_it(holder, tag, tmp_path):
    port, close = holder()
    log_path = tmp_path / "launch.log"
    try:
        t0 = time.monotonic()
        rc = _wait_exit(_launch(["--port", str(port)], tag, log_path), 2 * FAIL_S)
        took = time.monotonic() - t0
    finally:
        close()
    out = log_path.read_text(errors="replace")
    assert rc != 0 and took < FAIL_S, f"rc {rc} after {took:.1f} s:\n{out}"
    assert f"port {port}" in out and "already in use" in out.lower(), out
    assert not _claims_ready(out), out
    _assert_nothing_left(tag)


def test_killed_scheduler_ends_the_launcher_naming_it(tag, tmp_path):
    log_path = tmp_path / "launch.log"
    proc = _launch(["--port", str(pick_port())], tag, log_path)
    deadline = time.monotonic() + START_S
    sched, seen = None, {}
    while sched is None:
        assert proc.poll() is None, log_path.read_text(errors="replace")
        assert time.monotonic() < deadline, "no sglang::scheduler process appeared"
        for p in _family(proc.pid):
            seen[p.pid] = p
            try:
                if p.cmdline() and p.cmdline()[0].startswith("sglang::scheduler"):
                    sched = p
            except psutil.Error:
                continue
        time.sleep(0.2)
    time.sleep(1.0)  # the detokenizer starts right after the schedulers
    seen.update((p.pid, p) for p in _family(proc.pid))
    sched.kill()
    t0 = time.monotonic()
    rc = _wait_exit(proc, 2 * FAIL_S)
    took = time.monotonic() - t0
    out = log_path.read_text(errors="replace")
    assert rc != 0 and took < FAIL_S, f"rc {rc} after {took:.1f} s:\n{out}"
    assert f"sglang::scheduler (pid {sched.pid}) died" in out, out
    assert not _claims_ready(out), out
    _assert_nothing_left(tag, list(seen.values()))


def test_help_has_no_side_effects(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    env = {**os.environ, "SGLANG_EXT_CACHE": str(cache)}
    out = subprocess.run(
        [*LAUNCH, "--help"], capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    for flag in ("--single-expert-mode", "--model-path", "--tp-size", "--port"):
        assert flag in out.stdout
    assert list(cache.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["cache"]
    assert "FutureWarning" not in out.stderr
