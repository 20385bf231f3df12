"""`study check`: a verdict per item from hand-made environment reports, and the exit code."""

import subprocess
import sys

from sglang_ext.study.check import FAIL, OK, WARN, needed_devices, run_checks
from sglang_ext.study.config import load_config
from tests._support.paths import REPO_ROOT

VERSIONS = {"sglang": "0.4.7", "torch": "2.7.1", "transformers": "4.52.3", "triton": "3.3.1"}


def _report(gpus=0, sglang="0.4.7", nccl="2.21.5", peer=None, patch="sglang 0.4.7: pristine"):
    g = [{"index": i, "name": "NVIDIA H200", "memory_gb": 143.0} for i in range(gpus)]
    return {
        "env": {"versions": {**VERSIONS, "sglang": sglang}, "cpu_count": 2},
        "gpus": g,
        "nccl": nccl if gpus else None,
        "peer_access": peer if peer is not None else [[True] * gpus for _ in range(gpus)],
        "patch_status": patch,
    }


def _verdicts(items):
    return {i.name: i.verdict for i in items}


def test_eight_gpu_host_ready_for_the_8gpu_config():
    cfg = load_config("comprehensive", REPO_ROOT / "bench" / "study_8gpu.toml")
    assert needed_devices(cfg) == 8  # the fork's EP launch: tp 4 x dp 2 ranks
    v = _verdicts(run_checks(cfg, mode="comprehensive", report=_report(gpus=8)))
    assert v["devices"] == OK and v["NCCL"] == OK and v["peer access"] == OK
    assert v["sglang"] == OK and v["patch status"] == OK


def test_missing_things_fail_and_say_so():
    cfg = load_config("comprehensive", REPO_ROOT / "bench" / "study_8gpu.toml")
    peer = [[i == j or j != 3 for j in range(4)] for i in range(4)]
    items = run_checks(
        cfg,
        mode="comprehensive",
        report=_report(
            gpus=4,
            sglang="0.4.8",
            nccl="unavailable (no NCCL)",
            peer=peer,
            patch="sglang 0.4.7: modified (qwen3_moe.py differs)",
        ),
    )
    v = _verdicts(items)
    assert v["devices"] == FAIL and v["sglang"] == FAIL and v["NCCL"] == FAIL
    assert v["patch status"] == FAIL and v["peer access"] == WARN
    detail = {i.name: i.detail for i in items}
    assert "needs 8" in detail["devices"] and "sglang==0.4.7" in detail["sglang"]
    assert "(0, 3)" in detail["peer access"]


def test_cpu_host_is_fine_for_quick():
    v = _verdicts(run_checks(load_config("quick"), mode="quick", report=_report(gpus=0)))
    assert v["devices"] == OK and v["NCCL"] == OK
    v = _verdicts(run_checks(load_config("comprehensive"), mode="comprehensive", report=_report()))
    assert v["devices"] == WARN


def test_cli_check_exit_code_follows_the_verdicts():
    out = subprocess.run(
        [sys.executable, "-m", "sglang_ext.study", "check"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO_ROOT,
    )
    lines = out.stdout.splitlines()
    assert lines[-1].startswith("verdict: ")
    failed = [ln for ln in lines[:-1] if ln.lstrip().startswith("FAIL")]
    assert (out.returncode == 1) == bool(failed), out.stdout
    assert any(" patch status " in ln for ln in lines) and any(" NCCL " in ln for ln in lines)
