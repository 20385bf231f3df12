"""Where measured kernel tables live, and how they are read and written: one JSON file per
(kind, Triton version, device).

As sglang's fused-MoE configs, tables are data beside the kernels::

    configs/triton_3_6_0/device_name=NVIDIA_H200.json                    # fused MLP launches
    configs/triton_3_6_0/dispatch_device_name=NVIDIA_H200.json           # MLP implementation
    configs/triton_3_6_0/decode_attention_device_name=NVIDIA_H200.json   # attention stage 1
    configs/triton_3_6_0/gemv_device_name=NVIDIA_H200.json               # decode linears

A table is ``{"device_name": ..., "triton": ..., <notes>, "shapes": {<key>: [<bucket>, ...]}}``;
each kind parses its own buckets (``parse(path, raw)`` raises a ValueError naming the file
and the fix) and :func:`merge_table` never writes what that parser would refuse.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DEFAULT_DIR", "KINDS", "merge_table", "present_tables", "read_table", "table_path"]

DEFAULT_DIR = Path(__file__).parent / "configs"
KINDS = {"fused_mlp": "", "fused_mlp_dispatch": "dispatch_",
         "decode_attention": "decode_attention_", "gemv": "gemv_"}  # fmt: skip
"""Table kinds (as records name them) -> their file-name prefix."""
T = TypeVar("T")


def table_path(
    kind: str,
    device_name: str,
    directory: str | Path | None = None,
    triton_version: str | None = None,
) -> Path:
    """``<directory>/triton_<version>/<kind>device_name=<name>.json`` (spaces in the device
    name become underscores; ``kind`` is '' or ends in '_'; version: the running Triton's)."""
    if triton_version is None:
        import triton

        triton_version = triton.__version__
    name = device_name.replace(" ", "_")
    version_dir = "triton_" + triton_version.replace(".", "_")
    return Path(directory or DEFAULT_DIR) / version_dir / f"{kind}device_name={name}.json"


def present_tables(device_name: str, directory: str | Path | None = None,
                   triton_version: str | None = None) -> list[str]:  # fmt: skip
    """The kinds (``KINDS``) with a table for this device and Triton: what a bench record
    notes, since a missing table silently means the default kernels."""
    return [kind for kind, prefix in KINDS.items()
            if table_path(prefix, device_name, directory, triton_version).is_file()]  # fmt: skip


def read_table(path: str | Path, parse: Callable[[Path, object], T]) -> T | None:
    """``parse(path, json)`` of the table at ``path``; None if there is no file."""
    p = Path(path)
    if not p.is_file():
        return None
    try:
        raw = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not JSON ({e}); delete it or write it again with its bench") from e
    return parse(p, raw)


def merge_table(
    path: Path,
    device_name: str,
    shapes: Mapping[str, Sequence[Mapping[str, Any]]],
    parse: Callable[[Path, object], object],
    *,
    triton_version: str | None = None,
    notes: Mapping[str, Any] | None = None,
    merge_by: str | None = None,
) -> None:
    """Merge ``shapes`` (key -> bucket rows) into the table at ``path``, other keys kept.

    A key's old rows go, unless ``merge_by`` names a row field (e.g. ``m_max``): then only
    the old rows with a value of it among the new rows' are replaced, the others kept (a
    re-measurement of some token counts leaves the rest), all sorted by it.
    Refuses a table of another device and anything ``parse`` refuses, before writing; the
    file is replaced atomically (a killed writer leaves the old table or the new one)."""
    if not shapes:
        raise ValueError(f"{path}: no buckets to write: nothing was measured")
    if triton_version is None:
        import triton

        triton_version = triton.__version__
    raw = json.loads(path.read_text()) if path.is_file() else {}
    if raw and raw.get("device_name") not in (None, device_name):
        raise ValueError(f"{path} is the table of {raw['device_name']!r}, not {device_name!r}")
    raw.update({"device_name": device_name, "triton": triton_version, **(notes or {})})
    table = raw.setdefault("shapes", {})
    for k, rows in shapes.items():
        rows = [dict(b) for b in rows]
        if merge_by is not None:
            by = {r[merge_by]: r for r in table.get(k, [])} | {r[merge_by]: r for r in rows}
            rows = [by[v] for v in sorted(by)]
        table[k] = rows
    raw["shapes"] = dict(sorted(table.items()))
    parse(path, raw)  # never write what the loader would refuse
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(raw, indent=1) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
