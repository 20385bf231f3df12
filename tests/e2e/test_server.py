"""The real patched sglang server on CPU against HF transformers on the same weights.

`python -m sglang_ext.launch_server` serves the embedded one-expert default at TP 1
and TP 2 (gloo); /generate and /v1/chat/completions must return the greedy tokens of
a plain HF forward loop, and the server must shut down leaving no process behind.
TP 1 and TP 2 in `tp` mode use the shared servers of conftest.py; the Transformers backend
starts its own.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest
from e2e_servers import start_server

pytestmark = pytest.mark.slow

PROMPTS = [
    "The quick brown fox",
    "Hello world, this is",
    "What is the capital of France?",
    "1 2 3 4 5 6 7",
]
CHATS = [
    [{"role": "user", "content": "Hello, who are you?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Count to five."}],
]
MAX_NEW = 12


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


def check_matches_hf(url: str, tp: int, greedy, tok) -> None:
    # -- /generate, on token ids, greedy, logprobs of the chosen tokens
    for text in PROMPTS:
        ids = tok.encode(text)
        res = post(
            url + "/generate",
            {
                "input_ids": ids,
                "sampling_params": {
                    "max_new_tokens": MAX_NEW,
                    "temperature": 0,
                    "ignore_eos": True,
                },
                "return_logprob": True,
            },
        )
        got = [t[1] for t in res["meta_info"]["output_token_logprobs"]]
        want, want_lp, _ = greedy(ids, MAX_NEW)
        assert got == want, f"tp={tp} prompt {text!r}: sglang {got} != HF {want}"
        got_lp = [t[0] for t in res["meta_info"]["output_token_logprobs"]]
        # fp32 end to end; different kernels and reduction orders (and the TP
        # all-reduce) move logprobs by ~1e-5, far below the margin that decides a token
        assert got_lp == pytest.approx(want_lp, abs=2e-3)

    # -- /v1/chat/completions through the chat template
    for messages in CHATS:
        res = post(
            url + "/v1/chat/completions",
            {
                "model": "default",
                "messages": messages,
                "max_tokens": MAX_NEW,
                "temperature": 0,
            },
        )
        ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        want, _, _ = greedy(ids, MAX_NEW, {tok.eos_token_id})
        want_text = tok.decode(want, skip_special_tokens=True)
        assert res["choices"][0]["message"]["content"] == want_text


def check_sigterm_ends_all(srv, tp: int) -> None:
    """SIGTERM to the launcher alone: every rank follows, the launcher exits 0 within the
    30 s it promises after logging "shutdown complete", and nothing is left behind."""
    popen = srv.proc.proc
    leader = psutil.Process(popen.pid)
    family = [leader] + leader.children(recursive=True)
    assert len(family) >= 2 + tp, f"expected launcher, detokenizer and {tp} ranks"
    t0 = time.monotonic()
    os.kill(popen.pid, signal.SIGTERM)
    try:
        rc = popen.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the launcher still runs 60 s after SIGTERM:\n{srv.log()[-3000:]}")
    took = time.monotonic() - t0
    assert rc == 0 and took < 30, f"rc {rc} after {took:.1f} s:\n{srv.log()[-3000:]}"
    assert "shutdown complete" in srv.log()
    gone, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"processes left behind: {[p.pid for p in alive]}"


def test_shared_server_matches_hf(server, greedy, tokenizer):
    tp = 1 if server.name == "server_tp1" else 2
    check_matches_hf(server.url, tp, greedy, tokenizer)
    if server.proc is not None:  # every rank built the one-expert layer in tp mode
        for rank in range(tp):
            assert f"SingleExpertMoE: mode tp, rank {rank} of {tp}" in server.log()


@pytest.mark.ends_server
def test_shared_tp1_server_shuts_down_on_sigterm(server_tp1):
    if server_tp1.proc is None:
        pytest.skip("needs a server this session started (SGLANG_EXT_E2E_SERVER_TP1 is set)")
    check_sigterm_ends_all(server_tp1, 1)


def test_transformers_backend_matches_hf_and_shuts_down(greedy, tokenizer, tmp_path):
    """sglang's Transformers backend (SGLANG_MODEL_IMPL, patches 0009/0011) with HF's own TP
    plan at TP 2, the path the original fork fell into. (dp, launched with the original
    fork's EP flags, is checked against HF by tests/perf/serving/test_compare.py, which
    starts that server anyway.)"""
    srv = start_server(
        "own", ["--tp-size", "2"], tmp_path, env={"SGLANG_MODEL_IMPL": "transformers"}
    )
    try:
        check_matches_hf(srv.url, 2, greedy, tokenizer)
        check_sigterm_ends_all(srv, 2)
    finally:
        srv.proc.stop()
    log = srv.log()
    assert "Using Transformers backend" in log
    assert "SingleExpertMoE" not in log


def test_single_expert_mode_refuses_a_multi_expert_model(tmp_path):
    from sglang_ext.models.tiny import TinyMoEConfig, build_tiny_moe

    src = build_tiny_moe(tmp_path / "moe4", TinyMoEConfig(num_experts=4, num_experts_per_tok=2))
    before = sorted(p.name for p in src.iterdir())
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sglang_ext.launch_server",
            "--model-path",
            str(src),
            "--single-expert-mode",
            "dp",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2
    assert "has 4" in out.stderr and "prune it first" in out.stderr
    assert "python -m sglang_ext.prune" in out.stderr
    assert sorted(p.name for p in src.iterdir()) == before


def test_bad_single_expert_mode_value():
    out = subprocess.run(
        [sys.executable, "-m", "sglang_ext.launch_server", "--single-expert-mode", "ep"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "'ep' is not a single-expert mode" in out.stderr


def test_bad_flag_is_reported_before_a_held_port():
    """A bad flag exits 2 naming it even when the port is taken (the flags are checked
    before the port is bound); with good flags the same held port exits 1 naming it."""
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = str(held.getsockname()[1])
        base = [sys.executable, "-m", "sglang_ext.launch_server", "--host", "127.0.0.1"]
        bad = subprocess.run(
            base + ["--port", port, "--single-expert-mode", "ep"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert bad.returncode == 2 and "'ep' is not a single-expert mode" in bad.stderr
        busy = subprocess.run(base + ["--port", port], capture_output=True, text=True, timeout=120)
        assert busy.returncode == 1 and port in busy.stderr, busy.stderr[-2000:]
