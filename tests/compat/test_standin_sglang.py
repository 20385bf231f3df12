"""sglang 0.4.7's own CUDA-path code running on the sgl_kernel stand-in, on CPU.

The cases run in one child process (``_fake_cuda_worker``) that fakes CUDA availability
before importing sglang (so sglang binds ``from sgl_kernel import ...`` to the stand-in)
and runs Triton under ``TRITON_INTERPRET=1``; each case is reported here.  The real GPU run
is the lead's to do: this proves import wiring, calling conventions and numerics, not
CUDA-specific behaviour (streams, graphs, bf16 Triton).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
CASES = [
    "imports_bind_standin",
    "custom_all_reduce_fails_closed",
    "layers_forward_cuda_match_forward_native",
    "patched_rope_any_head_size_matches_forward_native",
    "fused_topk_matches_float64",
    "fused_experts_triton_matches_float64",
    "align_fused_triton_invariants",
    "align_sglang_delegation_invariants",
]


@pytest.fixture(scope="module")
def worker_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("fakecuda") / "results.json"
    env = {**os.environ, "TRITON_INTERPRET": "1", "TORCHDYNAMO_DISABLE": "1"}
    env.pop("SGLANG_EXT_STANDIN_MOE_ALIGN", None)
    env.pop("SGLANG_EXT_STANDIN_IMPL", None)
    proc = subprocess.run(
        [sys.executable, str(HERE / "_fake_cuda_worker.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    if proc.returncode != 0 or not out.exists():
        pytest.fail(f"fake-CUDA worker crashed (rc={proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(out.read_text())


@pytest.mark.parametrize("case", CASES)
def test_sglang_cuda_path_on_standin(worker_results, case):
    assert case in worker_results, f"worker did not run {case}"
    assert worker_results[case] is None, f"{case}:\n{worker_results[case]}"


def test_worker_ran_exactly_the_listed_cases(worker_results):
    assert sorted(worker_results) == sorted(CASES)
