"""Scaling math by hand, and the bench_one_batch runner plumbing with a fake runner."""

import sys

import pytest

from sglang_ext.perf.scaling import (
    efficiency,
    measured_bubble_ratio,
    pp_bubble_ratio,
    run_bench_one_batch,
    scaling_table,
    speedup,
)


def test_math_by_hand():
    assert speedup(8.0, 2.5) == 3.2
    assert efficiency(8.0, 2.5, 4) == pytest.approx(0.8)
    assert pp_bubble_ratio(4, 8) == pytest.approx(3 / 11)  # GPipe: (p-1)/(m+p-1)
    assert pp_bubble_ratio(1, 5) == 0.0
    # 2 stages busy 6 s and 4 s in a 10 s span: 1 - 10/20
    assert measured_bubble_ratio([6.0, 4.0], 10.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="span"):
        measured_bubble_ratio([11.0], 10.0)
    with pytest.raises(ValueError, match=">= 1"):
        efficiency(1.0, 1.0, 0)


def test_scaling_table():
    rows = [
        {"tp_size": 1, "batch_size": 1, "input_len": 128, "output_len": 4, "prefill_latency": 0.4},
        {"tp_size": 2, "batch_size": 1, "input_len": 128, "output_len": 4, "prefill_latency": 0.25},
        {"tp_size": 2, "batch_size": 8, "input_len": 128, "output_len": 4, "prefill_latency": 0.9},
    ]
    t = scaling_table(rows, metrics=("prefill_latency",))
    assert t[0]["speedup_prefill_latency"] == 1.0 and t[0]["efficiency_prefill_latency"] == 1.0
    assert t[1]["speedup_prefill_latency"] == pytest.approx(1.6)
    assert t[1]["efficiency_prefill_latency"] == pytest.approx(0.8)
    assert "speedup_prefill_latency" not in t[2]  # no one-device baseline for batch 8


def test_runner_plumbing(tmp_path):
    fake = tmp_path / "fake_bob.py"
    fake.write_text(
        "import argparse, json\n"
        "p = argparse.ArgumentParser(); p.add_argument('--tp-size', type=int, default=1)\n"
        "p.add_argument('--batch-size', type=int, nargs='+'); p.add_argument('--input-len', type=int, nargs='+')\n"
        "p.add_argument('--output-len', type=int); p.add_argument('--result-filename')\n"
        "a = p.parse_args()\n"
        "with open(a.result_filename, 'a') as f:\n"
        "    for b in a.batch_size:\n"
        "        for i in a.input_len:\n"
        "            f.write(json.dumps({'batch_size': b, 'input_len': i, 'output_len': a.output_len,\n"
        "                                'prefill_latency': b * i / 1000 / a.tp_size}) + '\\n')\n"
    )
    rows = run_bench_one_batch(
        ["--tp-size", "2"],
        batch_sizes=[1, 4],
        input_lens=[64],
        output_len=2,
        runner=f"{sys.executable} {fake}",
    )
    assert [(r["batch_size"], r["prefill_latency"]) for r in rows] == [(1, 0.032), (4, 0.128)]
    with pytest.raises(RuntimeError, match="exited 2"):
        run_bench_one_batch(
            ["--bogus"],
            batch_sizes=[1],
            input_lens=[8],
            output_len=1,
            runner=f"{sys.executable} {fake}",
        )
