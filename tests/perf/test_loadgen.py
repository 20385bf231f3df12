"""The load generator against an in-process fake server streaming sglang / OpenAI SSE."""

import math
import time

import numpy as np
import pytest

pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.fake_server import FakeServer, FakeServerConfig  # noqa: E402
from sglang_ext.perf.loadgen import LoadConfig, make_prompts, run_load_sync  # noqa: E402
from sglang_ext.perf.serve_bench import measure_client_overhead  # noqa: E402
from sglang_ext.perf.serve_metrics import serving_metrics  # noqa: E402

TOKEN_DELAY = 0.002
PREFILL = 0.01


@pytest.fixture(scope="module")
def server():
    srv = FakeServer(FakeServerConfig(token_delay_s=TOKEN_DELAY, prefill_delay_s=PREFILL))
    with srv as url:
        yield srv, url


@pytest.mark.parametrize("backend", ["sglang", "openai"])
def test_num_prompts_streaming(server, backend):
    srv, url = server
    before = srv.stats.requests
    cfg = LoadConfig(
        base_url=url,
        backend=backend,
        num_prompts=24,
        qps=40.0,
        sequence_length=7,
        output_length=6,
        vocab_size=50,
        max_concurrency=8,
        disable_progress=True,
        warmup_requests=1,
        sample_gpu_memory=False,
    )
    res = run_load_sync(cfg)
    assert srv.stats.requests - before == 25  # warm-up + 24
    assert len(res.outputs) == 24 and res.prompt_lens == [7] * 24
    for o in res.outputs:
        assert o.success, o.error
        assert 0 < o.ttft <= o.latency
        assert o.output_len == 6 and len(o.itl) == 5
        # the server waits PREFILL before token 1 and TOKEN_DELAY before each later one
        assert o.ttft >= PREFILL * 0.95
        assert o.latency >= (PREFILL + 5 * TOKEN_DELAY) * 0.95
    m = serving_metrics(res.prompt_lens, res.outputs, res.duration_s)
    assert m["completed"] == 24 and m["failed_requests"] == 0
    assert m["total_output_tokens"] == 24 * 6 and m["total_input_tokens"] == 24 * 7
    # Poisson at 40 req/s for 24 requests: ~0.6 s of arrivals (loose: 2 shared cores)
    assert 0.15 < res.duration_s < 5.0
    payload = srv.stats.payloads[-1]
    if backend == "sglang":
        assert payload["stream"] is True and len(payload["input_ids"]) == 7
        assert payload["sampling_params"]["ignore_eos"] is True
    else:
        assert payload["stream"] is True and payload["max_tokens"] == 6


def test_duration_mode_and_concurrency_cap(server):
    _, url = server
    cfg = LoadConfig(
        base_url=url,
        duration_s=1.0,
        qps=math.inf,
        max_concurrency=2,
        sequence_length=4,
        output_length=4,
        vocab_size=50,
        disable_progress=True,
        warmup_requests=0,
        sample_gpu_memory=False,
    )
    t0 = time.perf_counter()
    res = run_load_sync(cfg)
    assert time.perf_counter() - t0 < 4.0
    ok = [o for o in res.outputs if o.success]
    assert len(ok) == len(res.outputs) > 4
    # with at most 2 in flight, the summed busy time can't exceed 2 x the wall time
    assert sum(o.latency for o in ok) <= 2 * res.duration_s * 1.05


def test_failures_are_counted_with_errors():
    with FakeServer(FakeServerConfig(fail_every=3)) as url:
        cfg = LoadConfig(
            base_url=url,
            num_prompts=9,
            sequence_length=3,
            output_length=2,
            vocab_size=20,
            disable_progress=True,
            warmup_requests=0,
            sample_gpu_memory=False,
        )
        res = run_load_sync(cfg)
    m = serving_metrics(res.prompt_lens, res.outputs, res.duration_s)
    assert m["failed_requests"] == 3 and m["completed"] == 6
    assert m["errors"] == {"fake failure": 3}


def test_text_prompts_have_requested_length(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(200)}
    vocab["[UNK]"] = 200
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")
    cfg = LoadConfig(num_prompts=1, prompt_kind="text", tokenizer="unused", sequence_length=17)
    gen = make_prompts(cfg, hf, np.random.default_rng(0))
    for _ in range(5):
        text, n = next(gen)
        assert isinstance(text, str) and n == 17 == len(hf.encode(text, add_special_tokens=False))
        assert "[UNK]" not in text


def test_config_errors_name_the_fix():
    with pytest.raises(ValueError, match="exactly one"):
        LoadConfig(vocab_size=10)
    with pytest.raises(ValueError, match="max_concurrency"):
        LoadConfig(duration_s=1.0, vocab_size=10)
    with pytest.raises(ValueError, match="tokenizer"):
        LoadConfig(num_prompts=1, prompt_kind="text")
    with pytest.raises(ValueError, match="qps"):
        LoadConfig(num_prompts=1, vocab_size=10, qps=0)


def test_client_overhead_on_instant_server():
    rec = measure_client_overhead(num_prompts=50, output_length=8, max_concurrency=1)
    m = rec["metrics"]
    assert m["completed"] == 50 and m["failed_requests"] == 0
    # one request at a time against a server that does no work: all of it is client +
    # loopback cost.  Generous bound for 2 shared cores; the report gives the real number.
    assert m["median_e2e_latency_ms"] < 100
