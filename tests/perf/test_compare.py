"""EP-vs-TP orchestration with a fake server command; the real launcher when it exists."""

import os
import sys
from pathlib import Path

import pytest

pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.compare import CompareConfig, parse_server_config, run_comparison  # noqa: E402
from sglang_ext.perf.server_process import http_ok  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_fake_servers_compared(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cfg = CompareConfig(
        configs=("dp:--single-expert-mode dp", "tp:--single-expert-mode tp --token-delay-s 0.003"),
        launcher=f"{sys.executable} -m sglang_ext.perf.fake_server",
        qps=(20.0, float("inf")),
        num_prompts=8,
        sequence_length=8,
        output_length=4,
        vocab_size=100,
        warmup_requests=1,
        ready_timeout_s=60,
        out_dir=str(tmp_path),
    )
    records, report = run_comparison(cfg)
    assert [(r["config"]["label"], r["config"]["qps"]) for r in records] == [
        ("dp", 20.0),
        ("dp", float("inf")),
        ("tp", 20.0),
        ("tp", float("inf")),
    ]
    for r in records:
        m = r["metrics"]
        assert m["completed"] == 8 and m["failed_requests"] == 0
        assert "--single-expert-mode" in r["config"]["server_cmd"]
        port = r["config"]["server_cmd"][r["config"]["server_cmd"].index("--port") + 1]
        assert not http_ok(f"http://127.0.0.1:{port}/health")  # server stopped
    # the tp fake waits 3 ms per token: its TPOT must show it, dp's must not
    tpot = {r["config"]["label"]: r["metrics"]["median_tpot_ms"] for r in records}
    assert tpot["tp"] >= 2.5 > tpot["dp"]
    text = report.read_text()
    assert "| dp |" in text and "| tp |" in text and "serving_comparison.png" in text
    assert (tmp_path / "compare.jsonl").exists() and (tmp_path / "server_tp.log").exists()


def test_bad_config_entry():
    with pytest.raises(ValueError, match="LABEL:FLAGS"):
        parse_server_config("--tp-size 2")
    with pytest.raises(ValueError, match="unique"):
        CompareConfig(configs=("a:--x", "a:--y"))


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / "sglang_ext" / "launch_server.py").exists(),
    reason="sglang_ext/launch_server.py not written yet",
)
def test_real_launcher_dp_vs_tp(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cfg = CompareConfig(
        num_prompts=4,
        sequence_length=16,
        output_length=4,
        warmup_requests=1,
        ready_timeout_s=600,
        out_dir=str(tmp_path),
    )
    records, report = run_comparison(cfg)
    assert [r["config"]["label"] for r in records] == ["dp", "tp"]
    for r in records:
        assert r["metrics"]["completed"] == 4, r["metrics"]["errors"]
        assert r["metrics"]["failed_requests"] == 0
    assert report.exists()
