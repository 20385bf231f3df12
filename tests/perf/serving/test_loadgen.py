"""The load generator against an in-process fake server streaming sglang / OpenAI SSE."""

import math
import time

import numpy as np
import pytest

pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.serving.fake_server import FakeServer, FakeServerConfig  # noqa: E402
from sglang_ext.perf.serving.loadgen import LoadConfig, make_prompts, run_load_sync  # noqa: E402
from sglang_ext.perf.serving.serve_bench import measure_client_overhead  # noqa: E402
from sglang_ext.perf.serving.serve_metrics import serving_metrics  # noqa: E402

TOKEN_DELAY = 0.002
PREFILL = 0.01


def _run(url: str, **load):
    """One load run, quiet (no progress bar, no GPU memory sampling, no warm-up unless asked)."""
    cfg = dict(disable_progress=True, sample_gpu_memory=False, warmup_requests=0)
    return run_load_sync(LoadConfig(base_url=url, **{**cfg, **load}))


@pytest.fixture(scope="module")
def server():
    srv = FakeServer(FakeServerConfig(token_delay_s=TOKEN_DELAY, prefill_delay_s=PREFILL))
    with srv as url:
        yield srv, url


@pytest.mark.parametrize("backend", ["sglang", "openai"])
def test_num_prompts_streaming(server, backend):
    srv, url = server
    before = srv.stats.requests
    res = _run(
        url,
        backend=backend,
        num_prompts=24,
        qps=40.0,
        sequence_length=7,
        output_length=6,
        vocab_size=50,
        max_concurrency=8,
        warmup_requests=1,
    )
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
    # Arrivals: the plan is seeded, so this is deterministic: 23 Poisson gaps at 40 req/s
    # should span ~0.575 s; a rate read as a gap (40 s) or ignored (0 s) falls far outside.
    plan = res.scheduled_s
    assert len(plan) == 24 and plan == sorted(plan) and 0.575 / 3 < plan[-1] < 0.575 * 3
    # Load can only make sends late, never early (but for the event loop's 1 ms timer
    # resolution), and the run lasts past the last send.
    lag = [s - p for s, p in zip(res.sent_s, plan, strict=True)]
    assert min(lag) >= -0.002 and res.duration_s >= plan[-1]
    # Lateness bound: 10x the mean gap.  Sends follow an absolute schedule, so a busy
    # machine delays each by its own scheduling hiccup only; sends that wait for earlier
    # responses (the regression this catches) pile up lateness along the run.
    assert sorted(lag)[len(lag) // 2] < 0.25, f"median send lateness {lag}"
    payload = srv.stats.payloads[-1]
    if backend == "sglang":
        assert payload["stream"] is True and len(payload["input_ids"]) == 7
        assert payload["sampling_params"]["ignore_eos"] is True
    else:
        assert payload["stream"] is True and payload["max_tokens"] == 6


def test_duration_mode_and_concurrency_cap(server):
    _, url = server
    res = _run(
        url,
        duration_s=1.0,
        qps=math.inf,
        max_concurrency=2,
        sequence_length=4,
        output_length=4,
        vocab_size=50,
    )
    # duration mode stops issuing at 1 s whatever the machine's speed (no wall-clock bound
    # on the whole run: in-flight requests finish after that, slower on busy cores)
    assert res.sent_s and max(res.sent_s) < 1.0
    ok = [o for o in res.outputs if o.success]
    assert len(ok) == len(res.outputs) > 4
    # with at most 2 in flight, the summed busy time can't exceed 2 x the wall time
    assert sum(o.latency for o in ok) <= 2 * res.duration_s * 1.05


def test_failures_are_counted_with_errors():
    with FakeServer(FakeServerConfig(fail_every=3)) as url:
        res = _run(url, num_prompts=9, sequence_length=3, output_length=2, vocab_size=20)
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
    with pytest.raises(ValueError, match="needs a tokenizer, not vocab_size"):
        LoadConfig(num_prompts=1, prompt_kind="text", vocab_size=5)
    with pytest.raises(ValueError, match="qps"):
        LoadConfig(num_prompts=1, vocab_size=10, qps=0)


def test_client_overhead_on_instant_server():
    measure_client_overhead(num_prompts=2, max_concurrency=1)  # lazy imports, not counted
    cpu0 = time.process_time()
    rec = measure_client_overhead(num_prompts=50, output_length=8, max_concurrency=1)
    cpu_ms = (time.process_time() - cpu0) * 1000 / 50
    m = rec["metrics"]
    assert m["completed"] == 50 and m["failed_requests"] == 0
    # One request at a time against a server (another process) that does no work.  The
    # bound is on this process's CPU time per request, which other processes on the
    # machine do not inflate (wall time on 2 shared cores varies 10x).  It includes the
    # record and start-up work, ~3.5 ms a request here when idle; 40 ms catches a client
    # that, say, re-creates its tokenizer or event loop per request.
    assert cpu_ms < 40, f"client CPU {cpu_ms:.1f} ms per request"
    # wall time only as a hang guard: 1 s per instant request is far beyond any load
    assert m["median_e2e_latency_ms"] < 1000


def _word_tokenizer(path):
    """A 200-word WordLevel tokenizer plus [UNK] (special), saved like a model folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(200)} | {"[UNK]": 200}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(path)
    return str(path)


class _ModelInfoServer(FakeServer):
    """The fake server, answering /get_model_info with a chosen model path."""

    def __init__(self, model_path: str) -> None:
        super().__init__(FakeServerConfig())
        self.model_path = model_path

    async def _model_info(self, request):
        from aiohttp import web

        return web.json_response({"model_path": self.model_path, "tokenizer_path": None})


def test_vocabulary_comes_from_the_server(tmp_path):
    """No tokenizer, no vocab size (the README line): the client asks /get_model_info."""
    path = _word_tokenizer(tmp_path / "model")
    srv = _ModelInfoServer(path)
    with srv as url:
        res = _run(url, num_prompts=6, sequence_length=50, output_length=2)
    assert res.tokenizer_path == path and all(o.success for o in res.outputs)
    ids = [i for p in srv.stats.payloads for i in p["input_ids"]]
    assert len(ids) == 300 and set(ids) <= set(range(200)), "ids outside the words (or [UNK])"
    assert len(set(ids)) > 100  # drawn over the whole vocabulary, not a corner of it


def test_server_without_a_usable_tokenizer_names_the_fix(tmp_path):
    with _ModelInfoServer(str(tmp_path / "not-here")) as url:
        cfg = LoadConfig(base_url=url, num_prompts=1, disable_progress=True)
        with pytest.raises(ValueError, match=r"not-here.*pass --tokenizer PATH or --vocab-size N"):
            run_load_sync(cfg)
    cfg = LoadConfig(base_url="http://127.0.0.1:9", num_prompts=1, disable_progress=True)
    with pytest.raises(ValueError, match=r"/get_model_info did not give it.*--vocab-size N"):
        run_load_sync(cfg)  # nothing listens on the discard port


def test_readme_serve_load_line_runs_as_written(tmp_path):
    """The README's serve_load line, flags as written (only the URL points at the fake
    server and the record goes to tmp): no --tokenizer needed, 64/64 requests succeed."""
    import json
    import subprocess
    import sys

    from tests._support.paths import REPO_ROOT

    srv = _ModelInfoServer(_word_tokenizer(tmp_path / "model"))
    out = tmp_path / "serve.jsonl"
    with srv as url:
        cmd = [sys.executable, str(REPO_ROOT / "bench/serve_load.py"), "--base-url", url]
        cmd += "--qps 8 --num-prompts 64 --sequence-length 512 --output-length 64".split()
        p = subprocess.run(
            [*cmd, "--output-file", str(out), "--disable-progress"],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert p.returncode == 0, p.stderr[-3000:]
    (rec,) = [json.loads(line) for line in out.read_text().splitlines()]
    m = rec["metrics"]
    assert m["completed"] == 64 and m["failed_requests"] == 0
    assert m["total_input_tokens"] == 64 * 512 and m["total_output_tokens"] == 64 * 64
    assert srv.stats.requests == 65  # one warm-up request, then the 64
