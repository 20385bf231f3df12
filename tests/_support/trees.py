"""Comparing directory trees byte for byte."""

from __future__ import annotations

from pathlib import Path

__all__ = ["snapshot"]


def snapshot(root: str | Path) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes."""
    root = Path(root)
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
