"""EP-vs-TP orchestration: a fake server command, and the real launcher on 2 ranks against HF."""

import math
import os
import sys

import pytest
import torch

pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.serving.compare import (  # noqa: E402
    CompareConfig,
    client_command,
    parse_server_config,
    run_comparison,
)
from sglang_ext.perf.serving.loadgen import LoadConfig  # noqa: E402
from sglang_ext.perf.serving.server_process import http_ok  # noqa: E402
from tests._support.paths import REPO_ROOT

TOKEN_DELAY_S = 0.02


def test_fake_servers_compared(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    cfg = CompareConfig(
        configs=(
            "dp:--single-expert-mode dp",
            f"tp:--single-expert-mode tp --token-delay-s {TOKEN_DELAY_S}",
        ),
        launcher=f"{sys.executable} -m sglang_ext.perf.serving.fake_server",
        qps=(20.0, float("inf")),
        num_prompts=8,
        sequence_length=8,
        output_length=4,
        repeats=2,
        vocab_size=100,
        warmup_requests=1,
        greedy_prompts=0,
        ready_timeout_s=60,
        out_dir=str(tmp_path),
    )
    seen = []
    records, report = run_comparison(cfg, done={("tp", 20.0, 1)}, on_record=seen.append)
    assert seen == records
    assert [(r["config"]["label"], r["config"]["qps"], r["config"]["repeat"]) for r in records] == [
        ("dp", 20.0, 0),
        ("dp", math.inf, 0),
        ("dp", 20.0, 1),
        ("dp", math.inf, 1),
        ("tp", 20.0, 0),
        ("tp", math.inf, 0),
        ("tp", math.inf, 1),  # (tp, 20, 1) was given as done
    ]
    for r in records:
        m = r["metrics"]
        assert m["completed"] == 8 and m["failed_requests"] == 0
        assert "--single-expert-mode" in r["config"]["server_cmd"]
        port = r["config"]["server_cmd"][r["config"]["server_cmd"].index("--port") + 1]
        assert not http_ok(f"http://127.0.0.1:{port}/health")  # server stopped
        assert r["config"]["client_cmd"][:2] == ["python", "bench/serve_load.py"]
    # the tp fake sleeps TOKEN_DELAY_S between tokens, the dp fake not at all.  The client
    # measures TPOT as (e2e - TTFT) / (tokens - 1) from its own arrival times, so a first
    # chunk that reaches it late shortens the measured gaps a little: 19.94 ms was seen for a
    # 20 ms sleep (3 gaps).  Hence 90% of the sleep as tp's floor and half of it as dp's cap.
    for r in records:
        tpot = r["metrics"]["median_tpot_ms"]
        if r["config"]["label"] == "tp":
            assert tpot >= 0.9 * TOKEN_DELAY_S * 1e3, tpot
        else:
            assert tpot < 0.5 * TOKEN_DELAY_S * 1e3, tpot
    text = report.read_text()
    assert "at inf (saturation): tp / dp = " in text and "throughput_vs_load.png" in text
    assert (tmp_path / "compare.jsonl").exists() and (tmp_path / "server_tp.log").exists()


def test_client_command_reruns_the_same_load():
    load = LoadConfig(base_url="http://h:1", qps=math.inf, num_prompts=3, vocab_size=7, seed=2)
    cmd = client_command(load)
    assert cmd[cmd.index("--qps") + 1] == "inf" and cmd[cmd.index("--seed") + 1] == "2"
    assert cmd[cmd.index("--vocab-size") + 1] == "7"


def test_bad_config_entry():
    with pytest.raises(ValueError, match="LABEL:FLAGS"):
        parse_server_config("--tp-size 2")
    with pytest.raises(ValueError, match="unique"):
        CompareConfig(configs=("a:--x", "a:--y"))
    with pytest.raises(ValueError, match="repeats"):
        CompareConfig(repeats=0)


def _hf_greedy(model, ids: list[int], n: int) -> list[int]:
    """Greedy decoding with full forwards (no KV cache): the independent reference."""
    seq = list(ids)
    with torch.no_grad():
        for _ in range(n):
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].double().argmax()))
    return seq[len(ids) :]


@pytest.mark.slow
def test_real_launcher_dp_vs_tp_on_2_ranks_match_hf(tmp_path, monkeypatch):
    """dp and tp over 2 ranks compute the same model differently: both must give HF's greedy
    tokens (fp32 default model), each server must have run its mode on both ranks, and
    the load must complete. dp is launched with the original fork's EP flags, as the study
    configs launch it (``launch_server`` rewrites them to attention TP 1 x DP 2 with the
    one-expert MoE over both ranks); tp is plain TP 2."""
    from transformers import AutoModelForCausalLM

    from sglang_ext.models.tiny import default_model_path

    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    cfg = CompareConfig(
        configs=(
            "dp:--tp-size 1 --dp-size 2 --enable-ep-moe --ep-size 2 --single-expert-mode dp",
            "tp:--tp-size 2 --single-expert-mode tp",
        ),
        qps=(math.inf,),
        num_prompts=4,
        sequence_length=16,
        output_length=4,
        warmup_requests=1,
        greedy_prompts=2,
        greedy_tokens=6,
        ready_timeout_s=300,
        out_dir=str(tmp_path),
    )
    records, _ = run_comparison(cfg, report=False)
    greedy = {r["config"]["label"]: r["metrics"] for r in records if r["bench"] == "greedy"}
    assert set(greedy) == {"dp", "tp"}
    assert greedy["dp"]["prompts"] == greedy["tp"]["prompts"]
    model = AutoModelForCausalLM.from_pretrained(
        default_model_path(), torch_dtype=torch.float32
    ).eval()
    for ids, dp_out, tp_out in zip(
        greedy["dp"]["prompts"], greedy["dp"]["output_ids"], greedy["tp"]["output_ids"], strict=True
    ):
        want = _hf_greedy(model, ids, cfg.greedy_tokens)
        assert dp_out == want, f"dp (EP flags): {dp_out} != HF {want} for prompt {ids}"
        assert tp_out == want, f"tp at TP 2: {tp_out} != HF {want} for prompt {ids}"
    for label in ("dp", "tp"):
        log = (tmp_path / f"server_{label}.log").read_text()
        for rank in range(2):
            assert f"SingleExpertMoE: mode {label}, rank {rank} of 2" in log
    serve = [r for r in records if r["bench"] == "serve"]
    assert [r["config"]["label"] for r in serve] == ["dp", "tp"]
    for r in serve:
        assert r["metrics"]["completed"] == 4 and r["metrics"]["failed_requests"] == 0, r[
            "metrics"
        ]["errors"]
