"""Request features of the OpenAI routes and /generate, on the patched CPU server.

Every greedy expectation comes from HF transformers on the same weights (full forwards,
float64 log-softmax): stop strings cut the HF text at its first occurrence, logprobs
equal HF's, ``echo`` prepends the prompt, streamed text and usage counts equal HF's
tokens. Sampling is checked by what must hold whatever the draw: n distinct choices.
"""

import pytest

pytestmark = pytest.mark.slow

PROMPT = "The quick brown fox"
MAX = 12


@pytest.fixture
def ref(server, tokenizer, greedy):
    """(prompt ids, HF greedy tokens up to EOS, their text) for PROMPT."""
    ids = tokenizer.encode(PROMPT)
    toks, _, _ = greedy(ids, MAX, {tokenizer.eos_token_id})
    return ids, toks, tokenizer.decode(toks, skip_special_tokens=True)


def completion(server, **kw):
    body = {"model": "default", "prompt": PROMPT, "max_tokens": MAX, "temperature": 0}
    return server.ok("/v1/completions", {**body, **kw})


def test_greedy_completion_matches_hf(server, ref):
    _, toks, text = ref
    out = completion(server)
    assert out["choices"][0]["text"] == text
    assert out["usage"]["completion_tokens"] == len(toks)


def test_stop_string(server, ref):
    _, _, text = ref
    stop = text[len(text) // 2 :][:2]
    assert stop.strip(), f"pick a prompt whose greedy text has no blanks mid-way: {text!r}"
    want = text[: text.find(stop)]
    got = completion(server, stop=[stop])["choices"][0]
    assert got["text"] == want and stop not in got["text"]
    assert got["finish_reason"] == "stop"
    out = server.ok(
        "/generate",
        {
            "text": PROMPT,
            "sampling_params": {"max_new_tokens": MAX, "temperature": 0, "stop": stop},
        },
    )
    assert out["text"] == want


def test_n_greedy_and_sampled(server, ref):
    _, _, text = ref
    out = completion(server, n=3)
    assert [c["text"] for c in out["choices"]] == [text] * 3
    assert sorted(c["index"] for c in out["choices"]) == [0, 1, 2]
    out = server.ok(
        "/v1/chat/completions",
        {
            "model": "default",
            "messages": [{"role": "user", "content": PROMPT}],
            "max_tokens": MAX,
            "temperature": 1.0,
            "n": 3,
        },
    )
    texts = [c["message"]["content"] for c in out["choices"]]
    assert len(texts) == 3 and len(set(texts)) > 1, f"3 samples of {MAX} tokens all equal: {texts}"


def test_completion_logprobs(server, ref, greedy, tokenizer):
    ids, toks, _ = ref
    _, want_lp, want_top = greedy(ids, MAX, {tokenizer.eos_token_id})
    lp = completion(server, logprobs=3)["choices"][0]["logprobs"]
    assert lp["token_logprobs"] == pytest.approx(want_lp, abs=2e-3)
    assert len(lp["top_logprobs"]) == len(toks)
    for chosen, top, hf_top in zip(lp["token_logprobs"], lp["top_logprobs"], want_top, strict=True):
        assert len(top) == 3 and all(v <= 0 for v in top.values())
        assert max(top.values()) == pytest.approx(chosen, abs=1e-6)  # greedy: top-1 is the pick
        assert sorted(top.values(), reverse=True) == pytest.approx(
            [v for _, v in hf_top[:3]], abs=2e-3
        )


def test_chat_logprobs(server, tokenizer, greedy):
    messages = [{"role": "user", "content": PROMPT}]
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    toks, want_lp, want_top = greedy(ids, MAX, {tokenizer.eos_token_id})
    out = server.ok(
        "/v1/chat/completions",
        {
            "model": "default",
            "messages": messages,
            "max_tokens": MAX,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": 2,
        },
    )
    content = out["choices"][0]["logprobs"]["content"]
    # the reply stops at EOS, which is sampled but not part of the content's tokens
    n = len(content)
    assert n in (len(toks), len(toks) - 1)
    assert [c["logprob"] for c in content] == pytest.approx(want_lp[:n], abs=2e-3)
    for c, hf_top in zip(content, want_top, strict=False):
        assert len(c["top_logprobs"]) == 2 and all(t["logprob"] <= 0 for t in c["top_logprobs"])
        assert c["top_logprobs"][0]["logprob"] == pytest.approx(c["logprob"], abs=1e-6)
        assert [t["logprob"] for t in c["top_logprobs"]] == pytest.approx(
            [v for _, v in hf_top[:2]], abs=2e-3
        )


def test_echo(server, ref):
    _, _, text = ref
    assert completion(server, echo=True)["choices"][0]["text"] == PROMPT + text


def test_stream_include_usage(server, ref):
    ids, toks, text = ref
    events = server.stream(
        "/v1/completions",
        {
            "model": "default",
            "prompt": PROMPT,
            "max_tokens": MAX,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    pieces = [c["text"] for e in events for c in e.get("choices") or []]
    assert "".join(pieces) == text
    usage = events[-1]["usage"]
    assert usage == {
        **usage,
        "prompt_tokens": len(ids),
        "completion_tokens": len(toks),
        "total_tokens": len(ids) + len(toks),
    }
    assert not events[-1]["choices"]
    assert all(e.get("usage") is None for e in events[:-1])


def test_generate_stream_matches_greedy(server, ref):
    ids, toks, text = ref
    events = server.stream(
        "/generate",
        {
            "input_ids": ids,
            "stream": True,
            "sampling_params": {"max_new_tokens": MAX, "temperature": 0},
        },
    )
    assert events[-1]["text"] == text  # /generate streams the text so far
    assert events[-1]["meta_info"]["completion_tokens"] == len(toks)


def test_seed_gives_the_same_sample(server):
    """Same seed, same tokens: alone, beside other requests, and in a /generate batch."""
    import concurrent.futures

    def sample(seed, prompt=PROMPT):
        body = {
            "model": "default",
            "prompt": prompt,
            "max_tokens": MAX,
            "temperature": 1.0,
            "seed": seed,
        }
        return server.ok("/v1/completions", body)["choices"][0]["text"]

    first = sample(1234)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futs = [
            pool.submit(sample, s, p)
            for s, p in [(1234, PROMPT), (99, PROMPT), (None, "other words"), (7, "and more")]
        ]
        again, other_seed = futs[0].result(), futs[1].result()
        [f.result() for f in futs[2:]]
    assert again == first
    assert other_seed != first, "seeds 1234 and 99 drew the same 12 tokens"
    unseeded = {sample(None) for _ in range(3)}
    assert len(unseeded) > 1, "unseeded sampling gave one text three times"
    out = server.ok(
        "/generate",
        {
            "text": ["unrelated", PROMPT],
            "sampling_params": {"max_new_tokens": MAX, "temperature": 1.0, "sampling_seed": 1234},
        },
    )
    single = server.ok(
        "/generate",
        {
            "text": PROMPT,
            "sampling_params": {"max_new_tokens": MAX, "temperature": 1.0, "sampling_seed": 1234},
        },
    )
    assert out[1]["text"] == single["text"]
