"""The real patched sglang server on CPU against HF transformers on the same weights.

`python -m sglang_ext.launch_server` serves the embedded one-expert default at TP 1
and TP 2 (gloo); /generate and /v1/chat/completions must return the greedy tokens of
a plain HF forward loop, and the server must shut down leaving no process behind.
"""

import json
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest
import torch

from sglang_ext.models.tiny import default_model_path
from sglang_ext.perf.server_process import ServerProcess, free_port

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


@pytest.fixture(scope="module")
def model_dir():
    return default_model_path()


@pytest.fixture(scope="module")
def hf(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def hf_greedy(model, ids: list[int], n: int, stop: set[int]) -> tuple[list[int], list[float]]:
    """Greedy decoding with full forwards (no cache): the independent reference."""
    out, logprobs = [], []
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([seq])).logits[0, -1].double()
            tok = int(logits.argmax())
            out.append(tok)
            logprobs.append(float(torch.log_softmax(logits, -1)[tok]))
            seq.append(tok)
            if tok in stop:
                break
    return out, logprobs


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


# the original fork's EP launch, scaled to 2 ranks: rewritten by launch_server to attention
# TP1 x DP2 with the MoE over both ranks (--tp-size 2 --dp-size 2 --enable-dp-attention)
ORIGINAL_EP = ["--tp-size", "1", "--dp-size", "2", "--enable-ep-moe", "--ep-size", "2"]


@pytest.mark.parametrize(
    "tp,mode,impl,extra",
    [
        (1, "tp", "native", []),
        (2, "tp", "native", []),
        (2, "dp", "native", []),
        (2, None, "transformers", []),
        (2, "dp", "native", ORIGINAL_EP),
    ],
    ids=["tp1", "tp2", "dp2", "transformers-tp2", "dp-original-ep-launch"],
)
def test_server_matches_hf_and_shuts_down(tp, mode, impl, extra, model_dir, hf, tmp_path):
    """impl 'transformers': sglang's Transformers backend (SGLANG_MODEL_IMPL, patches
    0009/0011) with HF's own TP plan, the path the original fork fell into."""
    model, tok = hf
    port = free_port()
    cmd = [sys.executable, "-m", "sglang_ext.launch_server", "--port", str(port)]
    cmd += extra or ["--tp-size", str(tp)]
    cmd += ["--single-expert-mode", mode] if mode else []
    url = f"http://127.0.0.1:{port}"
    env = {"SGLANG_MODEL_IMPL": impl if impl == "transformers" else "auto"}
    log_path = tmp_path / "server.log"
    with ServerProcess(cmd, url, ready_timeout_s=300, log_path=log_path, env=env) as srv:
        # -- /generate, on token ids, greedy, logprobs of the chosen tokens
        for text in PROMPTS:
            ids = tok.encode(text)
            res = post(url + "/generate", {
                "input_ids": ids,
                "sampling_params": {"max_new_tokens": MAX_NEW, "temperature": 0,
                                    "ignore_eos": True},
                "return_logprob": True,
            })
            got = [t[1] for t in res["meta_info"]["output_token_logprobs"]]
            want, want_lp = hf_greedy(model, ids, MAX_NEW, stop=set())
            assert got == want, f"tp={tp} prompt {text!r}: sglang {got} != HF {want}"
            got_lp = [t[0] for t in res["meta_info"]["output_token_logprobs"]]
            # fp32 end to end; different kernels and reduction orders (and the TP
            # all-reduce) move logprobs by ~1e-5, far below the margin that decides a token
            assert got_lp == pytest.approx(want_lp, abs=2e-3)

        # -- /v1/chat/completions through the chat template
        for messages in CHATS:
            res = post(url + "/v1/chat/completions", {
                "model": "default", "messages": messages, "max_tokens": MAX_NEW,
                "temperature": 0,
            })
            ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            want, _ = hf_greedy(model, ids, MAX_NEW, stop={tok.eos_token_id})
            want_text = tok.decode(want, skip_special_tokens=True)
            assert res["choices"][0]["message"]["content"] == want_text

        # -- clean shutdown: SIGTERM to the launcher alone; every rank must follow
        leader = psutil.Process(srv.proc.pid)
        family = [leader] + leader.children(recursive=True)
        assert len(family) >= 2 + tp, f"expected launcher, detokenizer and {tp} ranks"
        os.kill(srv.proc.pid, signal.SIGTERM)
        gone, alive = psutil.wait_procs(family, timeout=60)
        assert not alive, f"processes left behind: {[p.pid for p in alive]}"
    log = log_path.read_text()
    if impl == "transformers":
        assert "Using Transformers backend" in log
        assert "SingleExpertMoE" not in log
    else:  # every rank built the one-expert layer in the requested mode
        for rank in range(tp):
            assert f"SingleExpertMoE: mode {mode}, rank {rank} of {tp}" in log


def test_single_expert_mode_refuses_a_multi_expert_model(tmp_path):
    from sglang_ext.models.tiny import TinyMoEConfig, build_tiny_moe

    src = build_tiny_moe(tmp_path / "moe4", TinyMoEConfig(num_experts=4, num_experts_per_tok=2))
    before = sorted(p.name for p in src.iterdir())
    out = subprocess.run(
        [sys.executable, "-m", "sglang_ext.launch_server", "--model-path", str(src),
         "--single-expert-mode", "dp"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    assert "has 4" in out.stderr and "prune it first" in out.stderr
    assert "python -m sglang_ext.prune" in out.stderr
    assert sorted(p.name for p in src.iterdir()) == before


def test_bad_single_expert_mode_value():
    out = subprocess.run(
        [sys.executable, "-m", "sglang_ext.launch_server", "--single-expert-mode", "ep"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "'ep' is not a single-expert mode" in out.stderr
