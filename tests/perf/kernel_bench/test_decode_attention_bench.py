"""The decode-attention bench's pieces on the CPU: sglang's KV-split rule as we compute it
against sglang's own kernel, and sglang's stage 1 launched with other block configurations
against float64 attention (both under the Triton interpreter, in one child process:
``_attn_bench_worker.py``); the bench's argument checks."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_ext.perf.kernel_bench.decode_attention import AttnBenchArgs, Stage1Config, parse_config

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
ATTN_CASES = ["n32w4s2-1", "n32w4s2-3", "n32w4s2-8", "n64w4s3-3", "n16w8s2-8"]


@functools.cache
def _results() -> dict:
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, str(HERE / "_attn_bench_worker.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"worker failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_kv_split_rule_matches_sglangs_kernel():
    assert _results()["splits"] is None, _results()["splits"]


def test_bench_rows_on_the_cpu_with_a_fake_timer():
    assert _results()["bench_rows"] is None, _results()["bench_rows"]


@pytest.mark.parametrize("case", ATTN_CASES)
def test_stage1_configs_match_float64(case):
    res = _results()
    assert f"attn-{case}" in res, sorted(res)
    assert res[f"attn-{case}"] is None, res[f"attn-{case}"]


@pytest.mark.parametrize("batch", [1, 3, 9])
def test_patched_sglang_launches_what_the_table_says(batch):
    res = _results()
    assert f"patched-{batch}" in res, sorted(res)
    assert res[f"patched-{batch}"] is None, res[f"patched-{batch}"]


def test_one_launch_matches_sglangs_kernels():
    res = _results()
    assert "fused-2" in res, sorted(res)
    assert res["fused-2"] is None, res["fused-2"]


def test_config_names_and_bad_arguments():
    assert parse_config("n64w8s3") == Stage1Config(64, 8, 3)
    assert Stage1Config().name == "n32w4s2"  # sglang 0.4.7's launch
    with pytest.raises(ValueError, match="n<BLOCK_N>w<num_warps>s<num_stages>"):
        parse_config("64x4")
    with pytest.raises(ValueError, match="unknown presets"):
        AttnBenchArgs(presets=["llama"])
    with pytest.raises(ValueError, match="'sglang' or a count"):
        AttnBenchArgs(splits=["auto"])
    with pytest.raises(ValueError, match="n<BLOCK_N>"):
        AttnBenchArgs(configs=["n32w4"])
    with pytest.raises(ValueError, match="block_n=48: a power of two"):
        AttnBenchArgs(configs=["n32w4s2", "n48w4s2"])  # refused before any GPU time is spent


def test_cli_parses_and_refuses_without_a_gpu(capsys):
    import torch

    from sglang_ext.perf.kernel_bench.decode_attention import main

    if torch.cuda.is_available():
        pytest.skip("this checks the CPU refusal")
    argv = ["--presets", "qwen3-30b-a3b-1e", "--configs", "n32w4s2", "n64w4s3"]
    assert main([*argv, "--splits", "sglang", "8", "--batch-sizes", "1", "128"]) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
