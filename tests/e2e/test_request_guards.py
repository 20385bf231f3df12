"""The pieces patch 0014 calls, without a server (fast).

The bitmask is checked against xgrammar's own CPU kernel (C++), the reference the
0.4.7 backend meant to call; the request checks against hand-made cases.
"""

import asyncio
import threading

import pytest
import torch

from sglang_ext.serving import offload
from sglang_ext.serving.bitmask import apply_token_bitmask_
from sglang_ext.serving.request_checks import BadRequest, check_generate, parse_openai


@pytest.mark.parametrize("batch,vocab,words", [(3, 100, 4), (1, 64, 2), (2, 70, 2), (4, 130, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bitmask_matches_xgrammar(batch, vocab, words, dtype):
    xgrammar = pytest.importorskip("xgrammar")
    g = torch.Generator().manual_seed(batch * vocab)
    mask = torch.randint(-(2**31), 2**31 - 1, (batch, words), dtype=torch.int32, generator=g)
    logits = torch.randn(batch, vocab, generator=g)
    want = logits.clone()
    xgrammar.apply_token_bitmask_inplace(want, mask)  # float32 only
    got = logits.to(dtype)
    apply_token_bitmask_(got, mask)
    assert torch.equal(got.isinf(), want.isinf())
    assert torch.equal(got.float()[~got.isinf()], logits.to(dtype).float()[~want.isinf()])


def test_bitmask_hand_case():
    logits = torch.zeros(1, 35)
    mask = torch.tensor([[0b101, 1 << 2]], dtype=torch.int32)  # tokens 0, 2 and 34 allowed
    apply_token_bitmask_(logits, mask)
    assert (logits[0] == 0).nonzero().flatten().tolist() == [0, 2, 34]


class Req:  # the fields check_generate reads from a normalised GenerateReqInput
    def __init__(self, **kw):
        self.sampling_params = kw.pop("sampling_params", {})
        self.return_logprob = kw.pop("return_logprob", False)
        self.logprob_start_len = kw.pop("logprob_start_len", -1)
        self.top_logprobs_num = kw.pop("top_logprobs_num", 0)
        self.token_ids_logprob = kw.pop("token_ids_logprob", None)
        self.input_embeds = None
        assert not kw


@pytest.mark.parametrize(
    "req,ids,words",
    [
        (Req(), [1, 100], "input_ids[1] = 100"),
        (Req(), [True], "input_ids[0] = True"),
        (Req(sampling_params={"max_new_token": 3}), [1], "['max_new_token']"),
        (Req(return_logprob=True, logprob_start_len=2), [1, 2], "logprob_start_len = 2"),
        (Req(return_logprob=True, top_logprobs_num=101), [1], "top_logprobs_num = 101"),
        (Req(return_logprob=True, token_ids_logprob=[3, -1]), [1], "token_ids_logprob[1] = -1"),
    ],
)
def test_check_generate_refuses(req, ids, words):
    with pytest.raises(BadRequest, match=words.replace("[", r"\[").replace("]", r"\]")):
        check_generate(req, ids, vocab_size=100)


def test_check_generate_accepts():
    check_generate(Req(sampling_params={"max_new_tokens": 3, "temperature": 0}), [0, 99], 100)
    check_generate(Req(return_logprob=True, logprob_start_len=1, top_logprobs_num=100), [0, 1], 100)
    check_generate(Req(logprob_start_len=7), [0], 100)  # ignored without return_logprob


def test_parse_openai_names_fields():
    pytest.importorskip("sglang")
    from sglang.srt.openai_api.protocol import ChatCompletionRequest

    with pytest.raises(BadRequest, match="messages: Field required"):
        parse_openai(ChatCompletionRequest, {"model": "m"})
    with pytest.raises(BadRequest, match="JSON object, got list"):
        parse_openai(ChatCompletionRequest, [])
    ok = parse_openai(
        ChatCompletionRequest, {"model": "m", "messages": [{"role": "user", "content": "x"}]}
    )
    assert ok.model == "m"


def test_offload_runs_big_inputs_in_a_thread():
    seen = []

    def where(_):
        seen.append(threading.current_thread() is threading.main_thread())
        return 1

    async def go():
        await offload.run(where, "x", size=10)
        await offload.run(where, "x", size=offload.OFFLOAD_MIN_CHARS)

    asyncio.run(go())
    assert seen == [True, False]


class Info:  # the SamplingBatchInfo fields resample_seeded_ reads
    def __init__(self, seeds, top_k=10**9, top_p=1.0, min_p=0.0):
        n = len(seeds)
        self.sampling_seeds = torch.tensor(seeds)
        self.top_ks = torch.full((n,), top_k)
        self.top_ps = torch.full((n,), top_p)
        self.min_ps = torch.full((n,), min_p)


def test_seeded_draws_follow_the_distribution():
    from sglang_ext.serving.seeded_sampling import resample_seeded_

    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 4000
    tokens = torch.full((n,), -1, dtype=torch.int32)
    resample_seeded_(tokens, probs.expand(n, 4), Info(list(range(n))), torch.full((n,), 7))
    freq = torch.bincount(tokens.long(), minlength=4).double() / n
    # binomial standard error at n=4000 is <= 0.008; 4 sigma
    assert torch.allclose(freq, probs.double(), atol=0.032), freq


def test_seeded_draws_respect_filters_and_repeat():
    from sglang_ext.serving.seeded_sampling import resample_seeded_

    probs = torch.tensor([[0.1, 0.6, 0.3, 0.0]] * 64)
    for info, allowed in [
        (Info(list(range(64)), top_k=1), {1}),
        (Info(list(range(64)), top_p=0.5), {1}),
        (Info(list(range(64)), top_p=0.8), {1, 2}),
        (Info(list(range(64)), min_p=0.4), {1, 2}),
    ]:
        tokens = torch.zeros(64, dtype=torch.int32)
        resample_seeded_(tokens, probs, info, torch.arange(64))
        assert set(tokens.tolist()) <= allowed
    a, b = (torch.zeros(3, dtype=torch.int32) for _ in range(2))
    resample_seeded_(a, probs[:3], Info([5, -1, 5]), torch.tensor([9, 9, 9]))
    b[1] = 42  # an unseeded row keeps sglang's own draw
    resample_seeded_(b, probs[:3], Info([5, -1, 5]), torch.tensor([9, 9, 9]))
    assert a[0] == a[2] == b[0] and b[1] == 42


def test_seeds_follow_filter_and_merge():
    from sglang_ext.serving.seeded_sampling import batch_seeds, filter_seeds, merge_seeds

    class R:
        def __init__(self, s):
            self.sampling_params = type("P", (), {"sampling_seed": s})()

    assert batch_seeds([R(None), R(None)], "cpu") is None
    s = batch_seeds([R(None), R(3), R(4)], "cpu")
    assert s.tolist() == [-1, 3, 4]
    assert filter_seeds(s, torch.tensor([2, 0])).tolist() == [4, -1]
    assert merge_seeds(None, 2, s, 3, "cpu").tolist() == [-1, -1, -1, 3, 4]
    assert merge_seeds(s, 3, None, 1, "cpu").tolist() == [-1, 3, 4, -1]
    assert merge_seeds(None, 2, None, 1, "cpu") is None
