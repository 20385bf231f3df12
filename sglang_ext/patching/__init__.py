"""Applying sglang-ext's patch series (``patches/series``) to an sglang 0.4.7 tree."""

from sglang_ext.patching.source import (
    PatchError,
    PatchSeries,
    TreeState,
    apply,
    check,
    find_installed_sglang,
    revert,
    status,
)

__all__ = [
    "PatchError",
    "PatchSeries",
    "TreeState",
    "apply",
    "check",
    "find_installed_sglang",
    "revert",
    "status",
]
