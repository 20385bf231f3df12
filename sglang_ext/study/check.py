"""``study check``: versions, devices, patch status, NCCL and peer access, a verdict each.

Built on :func:`sglang_ext.perf.comm.envcheck.env_report`.  Verdicts: ``ok``; ``warn``
(the study runs, with less); ``FAIL`` (something required is missing: the study
would fail; the CLI exits non-zero).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from typing import Any

from sglang_ext import SGLANG_VERSION

from .config import StudyConfig

__all__ = ["CheckItem", "run_checks", "format_checks", "needed_devices"]

OK, WARN, FAIL = "ok", "warn", "FAIL"


@dataclass(kw_only=True, slots=True)
class CheckItem:
    """One line of the check."""

    name: str
    """What was checked."""
    verdict: str
    """ok, warn or FAIL."""
    detail: str
    """What was found, and for warn/FAIL what to do."""


def needed_devices(cfg: StudyConfig) -> int:
    """The most ranks any selected step asks for (TP x DP of the serving configs included)."""
    need = [1]
    if "latency" in cfg.steps:
        need.append(cfg.latency.tp_size)
    if "scaling" in cfg.steps:
        need += list(cfg.scaling.tp_sizes)
    if "serving" in cfg.steps:
        for entry in cfg.serving.configs:
            tp = re.search(r"--tp-size[ =](\d+)", entry)
            dp = re.search(r"--dp-size[ =](\d+)", entry)
            n = int(tp.group(1)) if tp else 1
            if dp and "--enable-dp-attention" not in entry:  # replicas, or the fork's EP launch
                n *= int(dp.group(1))
            need.append(n)
    if "sp_pp" in cfg.steps:
        need += list(cfg.sp_pp.nprocs)
    return max(need)


def _have(mod: str) -> bool:
    try:
        return importlib.util.find_spec(mod) is not None
    except (ImportError, ValueError):
        return False


def run_checks(
    cfg: StudyConfig, *, mode: str = "quick", report: dict[str, Any] | None = None
) -> list[CheckItem]:
    """Every check item; ``report`` is an ``env_report()`` already made (else one is made)."""
    from sglang_ext.perf.comm.envcheck import env_report

    rep = report if report is not None else env_report()
    env, gpus = rep["env"], rep["gpus"]
    v = env.get("versions", {})
    items: list[CheckItem] = []
    py = sys.version_info
    items.append(
        CheckItem(
            name="python",
            verdict=OK if py >= (3, 11) else FAIL,
            detail=f"{py.major}.{py.minor}.{py.micro}"
            + ("" if py >= (3, 11) else ": need >= 3.11 (tomllib)"),
        )
    )
    sg = v.get("sglang")
    items.append(
        CheckItem(
            name="sglang",
            verdict=OK if sg == SGLANG_VERSION else FAIL,
            detail=sg
            if sg == SGLANG_VERSION
            else f"{sg or 'not installed'}: need sglang=={SGLANG_VERSION}",
        )
    )
    for pkg, required in (("torch", True), ("transformers", True), ("triton", False)):
        have = v.get(pkg)
        items.append(
            CheckItem(
                name=pkg,
                verdict=OK if have else (FAIL if required else WARN),
                detail=have or f"not installed: pip install {pkg}",
            )
        )
    for mod, why in (
        ("sglang.bench_serving", "serving load"),
        ("scipy", "confidence intervals"),
        ("matplotlib", "plots"),
        ("tqdm", "progress bars"),
    ):
        items.append(
            CheckItem(
                name=mod,
                verdict=OK if _have(mod) else FAIL,
                detail=f"importable ({why})" if _have(mod) else f"missing: needed for {why}",
            )
        )
    ps = str(rep.get("patch_status") or "unknown")
    good = re.search(r"\b(pristine|applied)\b", ps) and "modified" not in ps
    items.append(
        CheckItem(
            name="patch status",
            verdict=OK if good else FAIL,
            detail=ps.strip().splitlines()[-1][:300] if ps.strip() else ps,
        )
    )
    need = needed_devices(cfg)
    if gpus:
        names = ", ".join(sorted({g["name"] for g in gpus}))
        enough = len(gpus) >= need
        items.append(
            CheckItem(
                name="devices",
                verdict=OK if enough else FAIL,
                detail=f"{len(gpus)} GPU(s): {names}"
                + ("" if enough else f"; the config needs {need}: lower the tp sizes / nprocs"),
            )
        )
        nccl = rep.get("nccl")
        ok_nccl = bool(nccl) and not str(nccl).startswith("unavailable")
        items.append(
            CheckItem(
                name="NCCL",
                verdict=OK if ok_nccl else FAIL,
                detail=str(nccl) if ok_nccl else f"{nccl}: install a CUDA torch build with NCCL",
            )
        )
        peer = rep.get("peer_access") or []
        missing = [(i, j) for i, row in enumerate(peer) for j, ok in enumerate(row) if not ok]
        items.append(
            CheckItem(
                name="peer access",
                verdict=OK if not missing else WARN,
                detail="every GPU pair"
                if not missing and len(gpus) > 1
                else (
                    "one GPU"
                    if not missing
                    else f"no P2P between {missing[:8]}: NCCL goes through the host"
                ),
            )
        )
    else:
        cpu_ok = mode != "comprehensive"
        items.append(
            CheckItem(
                name="devices",
                verdict=OK if cpu_ok else WARN,
                detail=f"no GPU: CPU only, {env.get('cpu_count')} cores; ranks use gloo"
                + ("" if cpu_ok else "; comprehensive is meant for a GPU host"),
            )
        )
        items.append(CheckItem(name="NCCL", verdict=OK, detail="n/a on CPU (gloo)"))
        items.append(CheckItem(name="peer access", verdict=OK, detail="n/a on CPU"))
    prof = _have("sglang_ext.profile")
    items.append(
        CheckItem(
            name="sglang_ext.profile",
            verdict=OK if prof else WARN,
            detail="importable (step 7 runs)" if prof else "not available: step 7 is skipped",
        )
    )
    return items


def format_checks(items: list[CheckItem]) -> str:
    w = max(len(i.name) for i in items)
    lines = [f"{i.verdict:>4}  {i.name:<{w}}  {i.detail}" for i in items]
    bad = [i.name for i in items if i.verdict == FAIL]
    lines.append("verdict: " + (f"FAIL ({', '.join(bad)} missing or wrong)" if bad else "ready"))
    return "\n".join(lines)
