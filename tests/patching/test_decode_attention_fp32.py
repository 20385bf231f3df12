"""Patch 0016: sglang's Triton decode attention lowers with an fp64 ``sm_scale`` (as
torch.compile passes it) and still computes attention.

The pristine kernels fail to lower with that argument type (the loop-carried type error
that stops ``--enable-torch-compile``), which shows the check can fail; the patched ones
lower, and under the Triton interpreter match a float64 softmax attention.  Tolerance
1e-5: float32 scores and softmax over at most 70 tokens of unit-variance data (each step
rounds at 6e-8 relative; exp and the split merge add a few ulps: 1.7e-7 seen).
Each check runs in a child interpreter with PYTHONPATH set to the tree.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sglang_ext.patching import apply

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
KERNELS = ("_fwd_kernel_stage1", "_fwd_grouped_kernel_stage1", "_fwd_kernel_stage2")


@pytest.fixture(scope="module")
def patched_tree(tmp_path_factory, pristine_tree, series):
    dst = tmp_path_factory.mktemp("patched") / "sglang"
    shutil.copytree(pristine_tree, dst)
    apply(dst, series)
    return dst


def _child(tree: Path, mode: str, interpret: bool = False) -> dict:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(tree.parent), str(ROOT)])}  # fmt: skip
    env.pop("TRITON_INTERPRET", None)
    if interpret:
        env["TRITON_INTERPRET"] = "1"
    proc = subprocess.run([sys.executable, str(HERE / "_decode_attention_worker.py"), mode],
                          env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, f"worker {mode} failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_pristine_kernels_refuse_an_fp64_sm_scale(pristine_tree):
    res = _child(pristine_tree, "ttir")
    assert "Loop-carried variable" in (res["_fwd_kernel_stage1"] or ""), res
    assert "Loop-carried variable" in (res["_fwd_grouped_kernel_stage1"] or ""), res


def test_patched_kernels_lower_with_an_fp64_sm_scale(patched_tree):
    res = _child(patched_tree, "ttir")
    assert res == dict.fromkeys(KERNELS), res


def test_patched_decode_attention_matches_float64_under_the_interpreter(patched_tree):
    res = _child(patched_tree, "interpret", interpret=True)
    assert set(res) == {"mha", "gqa"}, res
    bad = {k: v for k, v in res.items() if not v < 1e-5}  # NaN counts as bad
    assert not bad, f"max abs error vs float64 attention: {res}"
