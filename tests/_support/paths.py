"""The repository's root, for tests that run its scripts or put it on a child's PYTHONPATH
(one definition, so a test file's depth under ``tests/`` does not matter)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
