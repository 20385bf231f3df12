"""Fused SwiGLU MLP vs the float64 torch reference on CPU, under TRITON_INTERPRET=1.

The interpreter must be switched on before any Triton kernel is decorated, and other tests
may import our kernels first, so the cases run in one child process (``_interpret_worker``)
and each case is reported here.  float32 and float16 only: bf16 on the CPU interpreter
computes garbage (Triton 3.3-3.6 interpreter, seen here); bf16 is tested on the GPU.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _mlp_cases import case_ids

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def interpret_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("interp") / "results.json"
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, str(HERE / "_interpret_worker.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=800,
    )
    if proc.returncode != 0:
        pytest.fail(f"interpreter worker crashed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", list(case_ids()))
def test_matches_float64_reference(interpret_results, case):
    assert case in interpret_results, f"worker did not run {case}"
    msg = interpret_results[case]
    assert msg is None, f"{case}: {msg}"
