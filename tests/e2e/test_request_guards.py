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
