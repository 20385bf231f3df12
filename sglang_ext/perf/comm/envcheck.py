"""Environment check: GPUs, versions, NCCL, peer access, topology and sglang patch status."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
from typing import Any

from sglang_ext.perf.records import collect_env

from .devbw import peer_access_matrix

__all__ = ["gpu_topology", "patch_status", "nccl_version", "env_report"]

logger = logging.getLogger(__name__)


def _run(cmd: list[str], timeout: float = 60) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)
    return p.returncode, (p.stdout + p.stderr).strip()


def gpu_topology() -> str | None:
    """``nvidia-smi topo -m`` output, or None where nvidia-smi is absent."""
    if shutil.which("nvidia-smi") is None:
        return None
    rc, out = _run(["nvidia-smi", "topo", "-m"])
    return out if rc == 0 else f"nvidia-smi topo -m failed ({rc}): {out}"


def nccl_version() -> str | None:
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        v = torch.cuda.nccl.version()
        return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
    except Exception as e:  # NCCL missing from this torch build
        return f"unavailable ({e})"


def patch_status(target: str | None = None) -> str:
    """``python -m sglang_ext.patch status [--target T]`` output, or "unknown" where that tool
    is absent.  ``target``: an sglang package directory (default: the installed sglang)."""
    for mod in ("sglang_ext.patch", "sglang_ext.patching"):
        try:
            spec = importlib.util.find_spec(mod)
        except ImportError:
            spec = None
        if spec is None:
            continue
        is_pkg = spec.submodule_search_locations is not None
        if is_pkg and importlib.util.find_spec(mod + ".__main__") is None:
            continue
        extra = ["--target", str(target)] if target is not None else []
        rc, out = _run([sys.executable, "-m", mod, "status", *extra])
        return out if rc == 0 else f"`python -m {mod} status` failed ({rc}): {out[-500:]}"
    return "unknown"


def env_report() -> dict[str, Any]:
    env = collect_env()
    gpus: list[dict[str, Any]] = []
    try:
        import torch

        for i in range(torch.cuda.device_count() if torch.cuda.is_available() else 0):
            p = torch.cuda.get_device_properties(i)
            gpus.append(
                {
                    "index": i,
                    "name": p.name,
                    "memory_gb": p.total_memory / 1e9,
                    "capability": f"{p.major}.{p.minor}",
                    "sm_count": p.multi_processor_count,
                }
            )
    except ImportError:
        pass
    return {
        "env": env,
        "gpus": gpus,
        "nccl": nccl_version(),
        "peer_access": peer_access_matrix(),
        "topology": gpu_topology(),
        "patch_status": patch_status(),
    }
