"""Result records: one JSON object per line, carrying config and environment.

Every benchmark in ``bench/`` writes records made by :func:`make_record`, so that
plots and reports can be built from records alone.  Schema (version 1)::

    {"schema": "sglang_ext.<bench>/1", "bench": str, "ts": ISO-8601 UTC,
     "git_sha": str | None, "env": {...}, "config": {...}, "metrics": {...}}

Metric keys carry their unit (``p99_ttft_ms``, ``bw_gbps``, ``tok_per_s``), as in
``sglang.bench_serving``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import importlib.metadata as _md
import json
import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["collect_env", "make_record", "append_jsonl", "read_jsonl", "one_run", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("schema", "bench", "ts", "git_sha", "env", "config", "metrics")
_PACKAGES = ("sglang", "sglang-ext", "torch", "triton", "transformers", "numpy")


def _version(pkg: str) -> str | None:
    try:
        return _md.version(pkg)
    except _md.PackageNotFoundError:
        return None


GIT_SHA_ENV = "SGLANG_EXT_GIT_SHA"
"""Names the commit where the tree has no git history of its own (a copy on a lent GPU)."""


def git_sha(cwd: str | Path | None = None) -> str | None:
    """``$SGLANG_EXT_GIT_SHA`` if set, else the commit of the checkout at ``cwd`` (this
    package's by default), else None."""
    if os.environ.get(GIT_SHA_ENV):
        return os.environ[GIT_SHA_ENV].strip()
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect_env() -> dict[str, Any]:
    """Versions, host and accelerator facts for a record's ``env`` field."""
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "cpu_count": os.cpu_count(),
        "versions": {p: _version(p) for p in _PACKAGES},
    }
    try:
        import torch

        env["versions"]["torch"] = torch.__version__
        env["cuda"] = torch.version.cuda
        if torch.cuda.is_available():
            env["device"] = torch.cuda.get_device_name(0)
            env["device_count"] = torch.cuda.device_count()
            env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        else:
            env["device"] = "cpu"
            env["device_count"] = 0
    except ImportError:
        env["device"] = "unknown (no torch)"
    try:
        import triton

        env["versions"]["triton"] = triton.__version__
    except ImportError:
        pass
    return env


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return obj


def make_record(
    bench: str,
    config: Any,
    metrics: dict[str, Any],
    *,
    env: dict[str, Any] | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """Build a record; ``config`` may be a dataclass (embedded with ``asdict``) or a dict."""
    return {
        "schema": f"sglang_ext.{bench}/{version}",
        "bench": bench,
        "ts": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_sha": git_sha(),
        "env": env if env is not None else collect_env(),
        "config": _plain(config),
        "metrics": metrics,
    }


def append_jsonl(path: str | Path, *records: dict[str, Any]) -> Path:
    """Append records to a JSON-lines file (created with its folder if missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for rec in records:
            missing = [k for k in REQUIRED_KEYS if k not in rec]
            if missing:
                raise ValueError(f"record lacks {missing}; build it with make_record()")
            f.write(json.dumps(rec, default=str) + "\n")
    return path


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSON-lines file, naming the line of any bad one."""
    with Path(path).open() as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON record ({e})") from e


def one_run(records: list[dict[str, Any]], source: str) -> tuple[str, str, str]:
    """(device, Triton version, git sha) shared by every record of ``records``; a ValueError
    naming ``source`` if they come from several runs (a table is written from one run)."""
    runs = {(r["env"]["device"], r["env"]["versions"]["triton"], r["git_sha"]) for r in records}
    if len(runs) != 1:
        raise ValueError(f"{source}: records of {len(runs)} runs (device, Triton, sha): "
                         f"{sorted(map(str, runs))}; keep one run's")  # fmt: skip
    return next(iter(runs))
