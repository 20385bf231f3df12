"""Environment check: versions, GPU facts and the patch tool's own status line."""

import subprocess
import sys

from sglang_ext.perf.envcheck import env_report, patch_status


def test_env_report_fields():
    rep = env_report()
    assert {"env", "gpus", "nccl", "peer_access", "topology", "patch_status"} <= set(rep)
    assert rep["env"]["versions"]["torch"]
    import torch

    assert len(rep["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_patch_status_matches_the_tool():
    status = patch_status()
    try:
        import sglang_ext.patch  # noqa: F401
    except ImportError:
        assert status == "unknown"
        return
    out = subprocess.run([sys.executable, "-m", "sglang_ext.patch", "status"], capture_output=True,
                         text=True, timeout=120)
    assert status == (out.stdout + out.stderr).strip() if out.returncode == 0 else "failed" in status
