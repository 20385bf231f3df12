"""The launcher's lifecycle parts without sglang: port binding, the supervisor, the
warm-up gate, and the noise filters (against the messages sglang 0.4.7 really logs)."""

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import psutil
import pytest

from sglang_ext.net import PortInUseError, pick_port
from sglang_ext.serving import quiet
from sglang_ext.serving.lifecycle import bind_http
from sglang_ext.serving.sglang_hooks import WarmupGate
from tests._support.paths import REPO_ROOT


def test_bind_http_holds_the_port_and_names_it():
    sock = bind_http("127.0.0.1", pick_port())
    port = sock.getsockname()[1]
    try:
        # held for good: even a second SO_REUSEADDR bind (as uvicorn binds) fails
        with pytest.raises(PortInUseError, match=f"HTTP port {port} .*already in use"):
            bind_http("127.0.0.1", port)
        with socket.socket() as other:
            other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with pytest.raises(OSError):
                other.bind(("127.0.0.1", port))
        socket.create_connection(("127.0.0.1", port), timeout=2).close()  # waits in the backlog
    finally:
        sock.close()


def _script(body: str) -> subprocess.Popen:
    code = textwrap.dedent(
        """
        import subprocess, sys, time
        from sglang_ext.serving.lifecycle import Supervisor
        from sglang_ext.serving.quiet import use_our_prefix
        use_our_prefix()
        def child(title, secs, ignore_term=False):
            ign = "signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignore_term else ""
            return subprocess.Popen([sys.executable, "-c",
                f"import setproctitle, signal, time; {ign}"
                f"setproctitle.setproctitle({title!r}); time.sleep({secs})"])
        """
    ) + textwrap.dedent(body)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )


def _children_of(proc: subprocess.Popen, n: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = psutil.Process(proc.pid).children()
        if len(kids) >= n:
            return kids
        time.sleep(0.1)
    raise AssertionError("children did not start")


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"still running after {timeout} s")
    return proc.returncode, out


def test_a_dead_server_child_ends_everything_naming_it():
    proc = _script(
        """
        s = Supervisor(poll_s=0.2, grace_s=0.2)
        s.watch()
        keep = child("sglang::detokenizer", 600, ignore_term=True)
        dies = child("sglang::scheduler_TP1", 2)
        time.sleep(600)
        """
    )
    kids = _children_of(proc, 2)
    t0 = time.monotonic()
    rc, out = _finish(proc, 60)
    assert rc == 1 and time.monotonic() - t0 < 30, out
    assert "sglang::scheduler_TP1" in out and "died" in out
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive  # the SIGTERM-ignoring one got SIGKILL


def test_sglang_ending_the_server_after_the_watchdog_saw_the_death_still_names_it():
    # a SIGKILLed rank: the watchdog sees it die and waits out its grace period; meanwhile
    # the surviving rank's collective fails and sglang ends the server (SIGQUIT ->
    # kill_process_tree): that exit must name the dead rank too
    proc = _script(
        """
        import socket, threading
        from sglang_ext.serving.sglang_hooks import SglangHooks
        s = Supervisor(poll_s=0.1, grace_s=30)
        s.watch()
        dies = child("sglang::scheduler_TP1", 1)
        while not s.deaths:
            time.sleep(0.05)
        hooks = SglangHooks(s, socket.socket(), threading.Event())
        hooks._kill_tree(lambda *a, **k: None)(os.getpid())
        """.replace("import socket", "import os, socket")
    )
    rc, out = _finish(proc, 60)
    assert rc == 1, out
    assert (
        "sglang::scheduler_TP1" in out and "died" in out and "sglang stopped the server" in out
    ), out


def test_sigterm_during_startup_exits_0_and_stops_children():
    proc = _script(
        """
        s = Supervisor()
        s.handle_signals()
        c = child("sglang::scheduler", 600)
        time.sleep(600)
        """
    )
    kids = _children_of(proc, 1)
    proc.send_signal(signal.SIGTERM)
    rc, out = _finish(proc, 30)
    assert rc == 0, out
    _, alive = psutil.wait_procs(kids, timeout=10)
    assert not alive


def test_a_shutdown_that_hangs_is_finished_by_the_deadline():
    proc = _script(
        """
        s = Supervisor(stop_deadline_s=1.0)
        s.request_stop("test")
        time.sleep(600)
        """
    )
    t0 = time.monotonic()
    rc, out = _finish(proc, 30)
    assert rc == 0 and time.monotonic() - t0 < 20 and "not finished after 1 s" in out, out


def test_warmup_gate():
    ready = threading.Event()
    seen = []

    async def app(scope, receive, send):
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def call(path):
        sent = []

        async def send(msg):
            sent.append(msg)

        await WarmupGate(app, ready)({"type": "http", "path": path}, None, send)
        return sent[0]["status"]

    assert asyncio.run(call("/health")) == 503
    assert asyncio.run(call("/health_generate")) == 503
    assert asyncio.run(call("/generate")) == 200  # only the health routes wait
    ready.set()
    assert asyncio.run(call("/health")) == 200
    assert seen == ["/generate", "/health"]


# messages exactly as sglang 0.4.7 logs them on a CPU machine (from a server log)
NOISE = [
    (
        "sglang.srt.layers.quantization.deep_gemm",
        "Failed to import deepgemm, disable _ENABLE_JIT_DEEPGEMM.",
    ),
    (
        "sglang.srt.models.registry",
        "Ignore import error when loading sglang.srt.models.deepseek_v2. No module named 'vllm'",
    ),
    (
        "sglang.srt.models.registry",
        "Ignore import error when loading sglang.srt.models.internvl. No module named 'sgl_kernel'",
    ),
    (
        "sglang.srt.models.registry",
        "Ignore import error when loading sglang.srt.models.grok. 0 active drivers ([]). There should only be one.",
    ),
    (
        "sglang.srt.layers.activation",
        "sgl-kernel is not available on Non-NV platforms. Fallback to other kernel libraries.",
    ),
    (
        "sglang.srt.layers.layernorm",
        "sgl-kernel layernorm implementation is not available on current platform. Fallback to other kernel libraries.",
    ),
    (
        "sglang.srt._custom_ops",
        "Failed to import from custom_ar with ModuleNotFoundError(\"No module named 'sgl_kernel'\")",
    ),
]
KEPT = [
    (
        "sglang.srt.models.registry",
        "Ignore import error when loading sglang.srt.models.qwen3_moe. cannot import name 'x' from 'y'",
    ),
    ("sglang.srt.layers.quantization.deep_gemm", "DeepGEMM JIT compile failed"),
    (
        "sglang.srt.server_args",
        "Cuda graph is disabled because of using torch native attention backend",
    ),
]
EPLB = (
    "sglang.srt.server_args",
    "EPLB is enabled or init_expert_location is provided. ep_dispatch_algorithm is configured.",
)


@pytest.fixture
def clean_filters():
    names = {n for n, _ in NOISE + KEPT + [EPLB]}
    with warnings.catch_warnings():
        yield
    for n in names:
        logging.getLogger(n).filters.clear()


def _passes(name: str, msg: str) -> bool:
    logger = logging.getLogger(name)
    rec = logger.makeRecord(name, logging.WARNING, __file__, 1, msg, (), None)
    return bool(logger.filter(rec))


def test_noise_dropped_everything_else_kept(clean_filters):
    assert all(_passes(n, m) for n, m in NOISE + [EPLB])  # nothing filtered before
    quiet.install()
    quiet.install()  # idempotent
    assert not any(_passes(n, m) for n, m in NOISE)
    assert all(_passes(n, m) for n, m in KEPT)
    assert not _passes(*EPLB)
    assert len(logging.getLogger("sglang.srt.models.registry").filters) == 2
    with warnings.catch_warnings(record=True) as got:
        warnings.warn(
            "The pynvml package is deprecated. Please install nvidia-ml-py",
            FutureWarning,
            stacklevel=1,
        )
        warnings.warn("something else", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in got] == ["something else"]


def test_eplb_note_kept_when_eplb_asked_for(clean_filters):
    quiet.install(eplb=True)
    assert _passes(*EPLB)


def test_our_prefix_only_on_our_logger(capsys):
    ours = logging.getLogger("sglang_ext")
    before = (list(ours.handlers), ours.propagate, ours.level)
    try:
        quiet.use_our_prefix()
        quiet.use_our_prefix()
        logging.getLogger("sglang_ext.some.module").info("ours")
        logging.getLogger("sglang.srt.something").warning("theirs")
        err = capsys.readouterr().err
        assert "[sglang-ext] ours" in err and "[sglang-ext] theirs" not in err
        assert sum(getattr(h, "_sglang_ext", False) for h in ours.handlers) == 1
    finally:
        ours.handlers[:], ours.propagate, ours.level = before
