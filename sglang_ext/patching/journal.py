"""Replacing a set of files in a tree all or nothing, across SIGKILL and Ctrl-C.

A change to a tree (``apply`` or ``revert`` of the series) goes through
``<tree>/.sglang_ext_txn/``:

1. every file to be touched is copied to ``backup/`` (and fsynced);
2. ``journal.json`` records the operation and, per file, its sha256 before and
   after (None: absent). It is written atomically (temp file, fsync,
   ``os.replace``): from here on the tree can always be put back;
3. the files are moved into place one by one (copy beside the target, fsync,
   ``os.replace``), so each file is either old or new, never torn;
4. removing ``journal.json`` commits; then the folder is removed.

The rule for an interrupted run is **roll back**: while ``journal.json`` exists,
the change is not committed, and :func:`rollback` restores every file named in it
from ``backup/`` (idempotent, so a rollback may itself be interrupted and rerun).
An exception in step 3 (Ctrl-C included) rolls back at once; a SIGKILL leaves the
journal for the next ``apply`` or ``revert``, which rolls back first. A folder
without ``journal.json`` was left before the first write (or after the commit)
and holds nothing to restore.

Test hook: ``SGLANG_EXT_PATCH_TEST_PAUSE_AFTER=KIND[:N]`` logs a line with
``SGLANG_EXT_PATCH_PAUSED`` and sleeps (at most 60 s) after the N-th step of
that kind (``staged``, ``backup``, ``journal``, ``move``, ``commit``,
``cleanup``, ``restore``; a bare number N means ``move:N``), so that a test can
kill the process there.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "JOURNAL_DIR",
    "Change",
    "Journal",
    "Steps",
    "commit",
    "discard_leftover",
    "leftover",
    "locked",
    "read_journal",
    "rollback",
]

logger = logging.getLogger(__name__)

JOURNAL_DIR = ".sglang_ext_txn"
_JOURNAL = "journal.json"
_FORMAT = 1
PAUSE_ENV = "SGLANG_EXT_PATCH_TEST_PAUSE_AFTER"
PAUSE_MARKER = "SGLANG_EXT_PATCH_PAUSED"
_PAUSE_MAX_S = 60.0


class JournalError(RuntimeError):
    """The journal or a backup cannot be used; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Change:
    """One file of the end state."""

    path: str
    """Path relative to the tree."""
    new: Path | None
    """A file holding the end-state content, or None: the file is to be removed."""


@dataclass(frozen=True, slots=True)
class Journal:
    """An uncommitted change found in a tree."""

    op: str
    """What was running (``apply`` or ``revert``)."""
    pid: int
    """The process that ran it."""
    started_at: str
    """When it started (UTC, ISO 8601)."""
    entries: tuple[dict, ...]
    """Per file: ``path``, ``before_sha256``, ``after_sha256`` (None: absent)."""

    def written(self, target: Path) -> int:
        """How many files already hold their end state (the rest are untouched)."""
        return sum(
            _sha256(target / e["path"]) == e["after_sha256"] != e["before_sha256"]
            for e in self.entries
        )


@dataclass(slots=True)
class Steps:
    """Counts the durable steps of a change, for the test pause hook."""

    pause_at: tuple[str, int] | None = field(default_factory=lambda: _parse_pause())
    """(kind, N) to pause after, from ``$SGLANG_EXT_PATCH_TEST_PAUSE_AFTER``."""
    counts: dict[str, int] = field(default_factory=dict)
    """Steps done so far, per kind."""

    def done(self, kind: str, what: str = "") -> None:
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.pause_at == (kind, n):
            logger.warning(
                "%s after %s:%d %s (test hook %s; sleeping up to %.0f s)",
                PAUSE_MARKER, kind, n, what, PAUSE_ENV, _PAUSE_MAX_S,
            )  # fmt: skip
            time.sleep(_PAUSE_MAX_S)


def _parse_pause() -> tuple[str, int] | None:
    raw = os.environ.get(PAUSE_ENV, "").strip()
    if not raw:
        return None
    if ":" in raw:
        kind, _, n = raw.partition(":")
    elif raw.isdigit():
        kind, n = "move", raw
    else:
        kind, n = raw, "1"
    try:
        return kind, int(n)
    except ValueError:
        raise JournalError(f"{PAUSE_ENV}={raw!r}: expected KIND[:N] or N") from None


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _tmp_beside(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.sglang_ext_tmp")


def _place(src: Path, dst: Path) -> None:
    """Copy ``src`` over ``dst`` so that ``dst`` is always either old or new."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = _tmp_beside(dst)
    shutil.copy2(src, part)
    with open(part, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(part, dst)


def _write_atomic(path: Path, text: str) -> None:
    part = path.with_name(path.name + ".part")
    with open(part, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)
    _fsync_dir(path.parent)


@contextlib.contextmanager
def locked(target: Path, timeout_s: float = 30.0) -> Iterator[None]:
    """Hold an exclusive lock on the tree (``flock`` on its directory: no file is
    created); a second patch process waits up to ``timeout_s``, then fails."""
    fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise JournalError(
                        f"another process has been patching {target} for over "
                        f"{timeout_s:.0f} s (`python -m sglang_ext.patch` or a server "
                        f"building its overlay): wait for it to end, or stop it and rerun"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # releases the lock


def read_journal(target: Path) -> Journal | None:
    """The uncommitted change in ``target``, or None."""
    path = target / JOURNAL_DIR / _JOURNAL
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        # written with os.replace, so only a foreign edit gets here
        raise JournalError(
            f"{path} is unreadable ({e}); the tree may be half-changed: reinstall a "
            f"pristine sglang, then remove {path.parent}"
        ) from e
    if data.get("format") != _FORMAT:
        raise JournalError(f"{path} has format {data.get('format')!r}, expected {_FORMAT}")
    return Journal(
        op=data["op"], pid=data["pid"], started_at=data["started_at"],
        entries=tuple(data["entries"]),
    )  # fmt: skip


def leftover(target: Path) -> Path | None:
    """A ``.sglang_ext_txn`` folder without a journal (nothing to restore), or None."""
    txn = target / JOURNAL_DIR
    return txn if txn.exists() and not (txn / _JOURNAL).exists() else None


def discard_leftover(target: Path) -> None:
    """Remove a journal-less ``.sglang_ext_txn`` folder (and stray temp files)."""
    txn = leftover(target)
    if txn is not None:
        shutil.rmtree(txn)
        logger.info("removed %s, left by an interrupted run before it changed anything", txn)


def commit(target: Path, changes: list[Change], *, op: str, steps: Steps) -> None:
    """Bring every ``change`` into ``target`` all or nothing (see the module doc).

    The caller holds :func:`locked` and has rolled back any earlier journal.
    """
    txn = target / JOURNAL_DIR
    if txn.exists():
        raise JournalError(f"{txn} exists: roll it back before a new change")
    backup = txn / "backup"
    journaled = False
    try:
        backup.mkdir(parents=True)
        entries = []
        for c in changes:
            dst = target / c.path
            before = _sha256(dst)
            if before is not None:
                _place(dst, backup / c.path)
                steps.done("backup", c.path)
            after = _sha256(c.new) if c.new is not None else None
            entries.append({"path": c.path, "before_sha256": before, "after_sha256": after})
        for parent in {(backup / c.path).parent for c in changes}:
            if parent.is_dir():
                _fsync_dir(parent)
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        journal = {"format": _FORMAT, "op": op, "pid": os.getpid(), "started_at": now}
        _write_atomic(txn / _JOURNAL, json.dumps(journal | {"entries": entries}, indent=1))
        journaled = True
        steps.done("journal")
        for c in changes:
            dst = target / c.path
            if c.new is not None:
                _place(c.new, dst)
            else:
                dst.unlink(missing_ok=True)
            steps.done("move", c.path)
        for parent in {(target / c.path).parent for c in changes}:
            _fsync_dir(parent)
        (txn / _JOURNAL).unlink()
        _fsync_dir(txn)
        journaled = False
        steps.done("commit")
    except BaseException:
        if journaled:
            logger.warning("%s of %s interrupted: rolling back", op, target)
            rollback(target)
        else:
            shutil.rmtree(txn, ignore_errors=True)
        raise
    shutil.rmtree(txn)
    steps.done("cleanup")


def rollback(target: Path, steps: Steps | None = None) -> Journal | None:
    """Put back every file named in an uncommitted journal; None if there is none."""
    journal = read_journal(target)
    if journal is None:
        return None
    steps = steps or Steps()
    txn = target / JOURNAL_DIR
    for e in journal.entries:
        dst = target / e["path"]
        _tmp_beside(dst).unlink(missing_ok=True)
        before = e["before_sha256"]
        if _sha256(dst) == before:
            continue
        if before is None:
            dst.unlink()
        else:
            saved = txn / "backup" / e["path"]
            if _sha256(saved) != before:
                raise JournalError(
                    f"the backup {saved} of {dst} is missing or damaged, so the "
                    f"interrupted {journal.op} cannot be rolled back: reinstall a pristine "
                    f"sglang, then remove {txn}"
                )
            _place(saved, dst)
        steps.done("restore", e["path"])
    for parent in {(target / e["path"]).parent for e in journal.entries}:
        if parent.is_dir():
            _fsync_dir(parent)
    (txn / _JOURNAL).unlink()
    _fsync_dir(txn)
    shutil.rmtree(txn)
    logger.info(
        "%s: rolled back the %s interrupted at %s (pid %d)",
        target, journal.op, journal.started_at, journal.pid,
    )  # fmt: skip
    return journal
