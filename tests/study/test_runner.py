"""The study runner through its real code path, on a reduced config: cheap steps (env,
bandwidth without spawned ranks) plus one serving point per config on the fake server.

The real steps 3, 4 and 6 (bench_one_batch, the SP+PP engine) are left out here to keep
the suite short; `python -m sglang_ext.study quick` runs them all.
"""

import json
import logging
import os
import sys

import pytest

pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.records import read_jsonl  # noqa: E402
from sglang_ext.study import runner as runner_mod  # noqa: E402
from sglang_ext.study import steps as steps_mod  # noqa: E402
from sglang_ext.study.config import STEPS, load_config  # noqa: E402
from sglang_ext.study.runner import RunOptions, run_study, step_status  # noqa: E402
from tests._support.paths import REPO_ROOT

CHEAP = ["env", "bandwidth", "serving", "profile", "report"]


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    )
    toml = tmp_path / "small.toml"
    toml.write_text(
        f"""
steps = {json.dumps(CHEAP)}
[bandwidth]
min_bytes = 1024
max_bytes = 4096
iters = 2
factor = 2
ranks = 1
[serving]
launcher = "{sys.executable} -m sglang_ext.perf.serving.fake_server"
configs = ["dp:--token-delay-s 0.001", "tp:--token-delay-s 0.02"]
qps = [inf]
num_prompts = 4
output_length = 4
sequence_length = 8
repeats = 2
warmup_requests = 1
greedy_prompts = 0
vocab_size = 100
ready_timeout_s = 60
[profile]
labels = ["nope"]
"""
    )
    return toml, load_config("quick", toml)


def _wrap(monkeypatch, name, fn):
    table = dict(steps_mod.STEP_TABLE)
    table[name] = steps_mod.Step(name, table[name].title, fn, table[name].records)
    monkeypatch.setattr(runner_mod, "STEP_TABLE", table)


def test_failure_then_resume(cfg, tmp_path, monkeypatch, caplog):
    toml, c = cfg
    out = tmp_path / "run"
    opts = RunOptions(mode="quick", out_dir=out, config_path=str(toml), show_progress=False)
    calls = []
    real_env = steps_mod.STEP_TABLE["env"].fn

    def failing_bandwidth(ctx):
        calls.append("bandwidth")
        import torch

        from sglang_ext.perf.comm.devbw import device_copy_bw

        ctx.emit(steps_mod.make_record("bw_device", {}, device_copy_bw(512, torch.device("cpu"))))
        raise RuntimeError("made to fail")

    def counted_env(ctx):
        calls.append("env")
        real_env(ctx)

    _wrap(monkeypatch, "bandwidth", failing_bandwidth)
    table = dict(runner_mod.STEP_TABLE)
    table["env"] = steps_mod.Step("env", table["env"].title, counted_env)
    monkeypatch.setattr(runner_mod, "STEP_TABLE", table)

    with caplog.at_level(logging.INFO, logger="sglang_ext.study"):
        rc = run_study(c, opts)
    assert rc == 1
    st = step_status(out)
    assert st["bandwidth"]["status"] == "failed" and "made to fail" in st["bandwidth"]["error"]
    # the failure did not stop the later steps
    assert st["env"]["status"] == "ok" and st["serving"]["status"] == "ok"
    assert (
        st["profile"]["status"] == "failed" and "name no serving config" in st["profile"]["error"]
    )
    assert st["report"]["status"] == "ok"
    assert "step 3 of 5: dp-vs-tp serving comparison" in caplog.text
    assert "--resume" in caplog.text
    serve = [r for r in read_jsonl(out / "5_serving" / "compare.jsonl") if r["bench"] == "serve"]
    assert sorted((r["config"]["label"], r["config"]["repeat"]) for r in serve) == [
        ("dp", 0),
        ("dp", 1),
        ("tp", 0),
        ("tp", 1),
    ]
    assert all(r["metrics"]["completed"] == 4 for r in serve)
    # the fake tp server sleeps 20 ms before each of tokens 2..4: no request can end sooner
    # than 60 ms after it was sent (TPOT, measured between arrivals at the client, can: a
    # late first read on a loaded machine shrinks it; a fresh CI run saw it under 20 ms)
    tp = [r["metrics"] for r in serve if r["config"]["label"] == "tp"]
    assert all(m["median_e2e_latency_ms"] >= 60 for m in tp), tp  # every request >= 60
    env_lines = (out / "1_env" / "records.jsonl").read_text()

    # -- resume: the real bandwidth step now; env and serving are complete and not rerun
    monkeypatch.setattr(
        runner_mod, "STEP_TABLE", {**table, "bandwidth": steps_mod.STEP_TABLE["bandwidth"]}
    )
    calls.clear()
    opts.resume = True
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="sglang_ext.study"):
        rc = run_study(c, opts)
    assert rc == 1  # profile still fails: its config names no serving label
    assert calls == []  # env not rerun
    st = step_status(out)
    assert st["bandwidth"]["status"] == "ok" and st["bandwidth"]["records"] == 3
    assert "already ok (--resume)" in caplog.text
    assert (out / "1_env" / "records.jsonl").read_text() == env_lines
    assert len(list(read_jsonl(out / "5_serving" / "compare.jsonl"))) == 4  # not remeasured
    bw = list(read_jsonl(out / "2_bandwidth" / "records.jsonl"))
    assert [r["metrics"]["size_bytes"] for r in bw] == [1024, 2048, 4096]
    assert (out / "2_bandwidth" / "records.jsonl.partial").exists()  # the failed run's, kept aside

    report = (out / "report" / "report.md").read_text()
    for i, name in enumerate(STEPS, 1):
        assert f"| {i} | {name}: " in report, name
    assert "**request throughput** at inf (saturation): tp / dp = " in report
    assert "## Index of records" in report and "5_serving/compare.jsonl:4" in report
    assert (
        "bench/serve_load.py --base-url" in report
        and "sglang_ext.perf.serving.fake_server" in report
    )
    assert "No GPU on this host" in report
    assert (out / "report" / "throughput_vs_load.png").exists()
    assert (out / "report" / "latency_vs_throughput.png").exists()


def test_ctrl_c_keeps_records_and_says_how_to_resume(cfg, tmp_path, monkeypatch, caplog):
    toml, c = cfg

    def interrupted(ctx):
        raise KeyboardInterrupt

    _wrap(monkeypatch, "serving", interrupted)
    out = tmp_path / "run"
    opts = RunOptions(
        mode="quick",
        out_dir=out,
        config_path=str(toml),
        show_progress=False,
        only=("bandwidth", "serving", "report"),
    )
    with caplog.at_level(logging.INFO, logger="sglang_ext.study"):
        rc = run_study(c, opts)
    assert rc == 130
    st = step_status(out)
    assert st["bandwidth"]["status"] == "ok" and st["serving"]["status"] == "interrupted"
    assert "report" not in st  # stopped at Ctrl-C
    assert len(list(read_jsonl(out / "2_bandwidth" / "records.jsonl"))) == 3
    assert f"--out-dir {out} --only bandwidth,serving,report --resume" in caplog.text


def test_resume_refuses_another_config(cfg, tmp_path):
    toml, c = cfg
    out = tmp_path / "run"
    run_study(c, RunOptions(mode="quick", out_dir=out, only=("report",), show_progress=False))
    other = load_config("quick")
    with pytest.raises(ValueError, match="another config"):
        run_study(other, RunOptions(mode="quick", out_dir=out, resume=True, show_progress=False))
    with pytest.raises(ValueError, match=r"--only: unknown steps \['serve'\]"):
        run_study(c, RunOptions(mode="quick", out_dir=out, only=("serve",)))
