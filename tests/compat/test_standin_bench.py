"""The stand-in bench (``bench/bench_standin_ops.py``) on CPU: its CLI and its cases.

Timing needs a GPU; here every op's case is built and both impls are run under the Triton
interpreter (in a child process), which must leave the same outputs, so the GPU run times the
same work for the kernel and the reference.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_ext.compat.bench import OPS, StandinBenchConfig

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def test_bench_cases_run_both_impls_with_equal_outputs(tmp_path):
    out = tmp_path / "r.json"
    env = {**os.environ, "TRITON_INTERPRET": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    proc = subprocess.run([sys.executable, str(HERE / "_bench_cases_worker.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and out.exists(), proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert sorted({k.split("-")[0] for k in res}) == sorted(OPS), res.keys()
    bad = {k: v for k, v in res.items() if v}
    assert not bad, "\n".join(f"{k}:\n{v}" for k, v in bad.items())


def test_bench_refuses_bad_config():
    with pytest.raises(ValueError, match="unknown ops"):
        StandinBenchConfig(ops=["rmsnorm", "flash"])
    with pytest.raises(ValueError, match="no preset shape"):
        StandinBenchConfig(hidden=[1000])
    with pytest.raises(ValueError, match="torch included"):
        StandinBenchConfig(impls=["triton", "flashinfer"])
    with pytest.raises(ValueError, match="float16/bfloat16 only"):
        StandinBenchConfig(impls=["torch", "flashinfer"], dtype="float32")


def test_bench_with_flashinfer_absent_stops_before_timing(monkeypatch):
    from sglang_ext.compat import bench, flashinfer_jit

    monkeypatch.setattr(flashinfer_jit, "_load", lambda: (None, "flashinfer is not installed"))
    monkeypatch.setattr(bench, "copy_gbps", lambda: pytest.fail("timed without flashinfer"))
    with pytest.raises(RuntimeError, match="flashinfer is not installed"):
        bench.run(StandinBenchConfig(impls=["torch", "flashinfer"]), lambda c, m: None)


def test_bench_cli_without_gpu_says_so():
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_standin_ops.py"), "--tokens", "1"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the CLI runs for real (lead's command)")
    assert proc.returncode == 2 and "needs a CUDA GPU" in proc.stderr
