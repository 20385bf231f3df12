"""Bad requests get a 4xx that names the problem, and the server stays as it was.

Each case was a 500 or ended the whole server before patch 0014 (marked below), or is
a check sglang already had. Afterwards a greedy request still gives HF's tokens and the
same tokens as before the bad ones.
"""

import json
import threading
import time

import pytest

pytestmark = pytest.mark.slow

OK = {"text": "Hello world, this is", "sampling_params": {"max_new_tokens": 8, "temperature": 0}}
MSG = [{"role": "user", "content": "hi"}]
LONG = " ".join(["word"] * 6000)  # over the 4096-token context


def gen(**sp):
    return {"text": "Hi", "sampling_params": {"max_new_tokens": 4, **sp}}


# (route, body (bytes = sent as is), words the error message must contain)
CASES = {
    "generate-malformed-json": ("/generate", b"{bad json", ["JSON"]),
    "completions-malformed-json": ("/v1/completions", b"{bad json", ["Expecting"]),
    "chat-malformed-json": ("/v1/chat/completions", b'{"model": "x",', ["Expecting"]),
    "generate-no-prompt": ("/generate", {}, ["text", "input_ids"]),
    "completions-no-prompt": ("/v1/completions", {"model": "x"}, ["prompt", "required"]),  # was 500
    "completions-no-model": ("/v1/completions", {"prompt": "hi"}, ["model", "required"]),  # was 500
    "chat-no-messages": (
        "/v1/chat/completions",
        {"model": "x"},
        ["messages", "required"],
    ),  # was 500
    "chat-no-model": ("/v1/chat/completions", {"messages": MSG}, ["model", "required"]),  # was 500
    "chat-body-is-a-list": ("/v1/chat/completions", [MSG], ["JSON object", "list"]),  # was 500
    "max-new-tokens-negative": ("/generate", gen(max_new_tokens=-1), ["max_new_tokens", "-1"]),
    "max-new-tokens-huge": ("/generate", gen(max_new_tokens=10**9), ["context length"]),
    "max-tokens-huge-chat": (
        "/v1/chat/completions",
        {"model": "x", "messages": MSG, "max_tokens": 10**9},
        ["context length"],
    ),
    "temperature-negative": ("/generate", gen(temperature=-0.5), ["temperature"]),
    "temperature-negative-completions": (
        "/v1/completions",
        {"model": "x", "prompt": "hi", "temperature": -1},
        ["temperature"],
    ),
    "prompt-over-context": (
        "/generate",
        {"text": LONG, "sampling_params": {"max_new_tokens": 1}},
        ["context length"],
    ),
    "prompt-over-context-chat": (
        "/v1/chat/completions",
        {"model": "x", "messages": [{"role": "user", "content": LONG}]},
        ["context length"],
    ),
    "unknown-sampling-param": ("/generate", gen(temprature=0.5), ["temprature"]),  # was 500
    "token-id-out-of-vocab": (
        "/generate",
        {"input_ids": [5, 10**7]},
        ["input_ids[1]"],
    ),  # ended the server
    "token-id-negative": (
        "/v1/completions",
        {"model": "x", "prompt": [-3]},
        ["input_ids[0]"],
    ),  # ended it
    "logprob-start-past-prompt": (
        "/generate",
        {**gen(), "return_logprob": True, "logprob_start_len": 50},
        ["logprob_start_len"],
    ),  # ended it
    "top-logprobs-huge": (
        "/v1/completions",
        {"model": "x", "prompt": "hi", "logprobs": 10**6},
        ["top_logprobs_num"],
    ),
    "seed-negative": ("/v1/completions", {"model": "x", "prompt": "hi", "seed": -1}, ["seed"]),
    "bad-regex": ("/generate", gen(regex="[unclosed"), ["grammar"]),
    # an aborted request that asked for logprobs ended the server (0014, schedule_batch)
    "bad-regex-with-logprobs": (
        "/generate",
        {**gen(regex="(("), "return_logprob": True},
        ["grammar"],
    ),
    "bad-json-schema-with-top-logprobs": (
        "/generate",
        {**gen(json_schema="{nope"), "return_logprob": True, "top_logprobs_num": 2},
        ["grammar"],
    ),
    "bad-ebnf": (
        "/v1/chat/completions",
        {"model": "x", "messages": MSG, "ebnf": "root ::= "},
        ["grammar"],
    ),
}

_before: dict[str, list[int]] = {}


def tokens_of(out) -> list[int]:
    return [t[1] for t in out["meta_info"]["output_token_logprobs"]]


def greedy_tokens(server) -> list[int]:
    return tokens_of(server.ok("/generate", {**OK, "return_logprob": True}))


def test_before(server, tokenizer, greedy):
    got = greedy_tokens(server)
    assert got == greedy(tokenizer.encode(OK["text"]), 8)[0]
    _before[server.name] = got


@pytest.mark.parametrize("case", list(CASES))
def test_bad_request_gets_4xx(server, case):
    path, body, words = CASES[case]
    status, out = server.post(path, body)
    assert 400 <= status < 500, f"{case}: HTTP {status}: {out}"
    message = json.dumps(out)
    for w in words:
        assert w in message, f"{case}: {w!r} not in the error {message[:300]}"
    assert server.healthy(), f"{case} left the server unhealthy"


def test_five_megabyte_prompt_does_not_block_others(server):
    """Tokenising 5 MB takes seconds; it runs off the event loop (patch 0014)."""
    big = {"text": "hello world " * (5 * 2**20 // 12), "sampling_params": {"max_new_tokens": 1}}
    data = json.dumps(big).encode()
    done = {}

    def send_big():
        done["big"] = server.post("/generate", data)
        done["big_at"] = time.perf_counter()

    t = threading.Thread(target=send_big)
    t.start()
    time.sleep(0.5)  # the big body is in (upload is local) and being tokenised
    t0 = time.perf_counter()
    status, out = server.post("/generate", OK)
    small_at = time.perf_counter()
    t.join(timeout=120)
    assert not t.is_alive(), "the 5 MB request got no answer in 120 s"
    assert status == 200, out
    status_big, out_big = done["big"]
    assert status_big == 400 and "context length" in json.dumps(out_big), out_big
    assert small_at - t0 < 2.0, f"a small request took {small_at - t0:.1f} s beside the 5 MB one"
    assert small_at < done["big_at"], "the small request waited for the 5 MB one"


def test_after(server, tokenizer, greedy):
    assert server.name in _before, "test_before did not run on this server"
    got = greedy_tokens(server)
    assert got == _before[server.name] == greedy(tokenizer.encode(OK["text"]), 8)[0]


def test_formerly_fatal_requests_beside_a_running_one(server, tokenizer, greedy):
    """The requests that used to end the scheduler fail alone: a request running beside
    them (in the same batches) still returns HF's greedy tokens."""
    fatal = [
        "token-id-out-of-vocab",
        "logprob-start-past-prompt",
        "bad-regex-with-logprobs",
        "bad-json-schema-with-top-logprobs",
    ]
    long_ok = {
        "text": OK["text"],
        "sampling_params": {"max_new_tokens": 48, "temperature": 0, "ignore_eos": True},
        "return_logprob": True,
    }
    got = {}
    t = threading.Thread(target=lambda: got.update(r=server.post("/generate", long_ok)))
    t.start()
    for case in fatal:
        path, body, _ = CASES[case]
        status, out = server.post(path, body)
        assert 400 <= status < 500, f"{case}: HTTP {status}: {out}"
    t.join(timeout=120)
    status, out = got["r"]
    assert status == 200, out
    assert tokens_of(out) == greedy(tokenizer.encode(OK["text"]), 48)[0]
