"""Check, apply and revert ``patches/series`` on an sglang 0.4.7 source tree.

The target is the ``sglang`` package directory: ``site-packages/sglang`` of a pip
install, or ``python/sglang`` of a git checkout. Patch paths are relative to it
(``a/srt/models/qwen3_moe.py``).

Guarantees:
- a tree that is not sglang 0.4.7 is refused, naming the version found;
- ``apply`` dry-runs the whole series first and changes nothing unless all of it
  applies: the patches are applied one by one (``git apply``) to a staging copy of
  the files they touch (a temporary folder, always removed; those of killed runs
  are removed by the next run);
- the result is moved into the tree through a journal (:mod:`.journal`): every
  file is backed up and the end state recorded before the first write, so a run
  killed half-way (SIGKILL, Ctrl-C, a crash) never leaves a half-patched tree
  behind. The rule is *roll back*: Ctrl-C rolls back at once; after a SIGKILL,
  ``status`` reports ``interrupted`` and says what to run, and the next ``apply``
  or ``revert`` first restores the tree as it was before the interrupted run,
  then does what it was asked (so ``apply`` ends patched, ``revert`` pristine);
- a stamp file records the series applied (names and sha256), so applying twice
  is a no-op that says so;
- ``revert`` runs ``git apply -R`` over the reversed series, restoring the files
  byte for byte, and removes the stamp (in the same journaled change).
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sglang_ext import SGLANG_VERSION, __version__
from sglang_ext.patching import journal, staging

__all__ = [
    "PatchError",
    "PatchSeries",
    "Status",
    "TreeState",
    "STAMP_NAME",
    "apply",
    "check",
    "default_patches_dir",
    "find_installed_sglang",
    "revert",
    "status",
    "tree_version",
]

logger = logging.getLogger(__name__)
STAMP_NAME = ".sglang_ext_patches.json"
PACKAGED_PATCHES = "_patches"  # the series inside a built sglang_ext (see setup.py)


class PatchError(RuntimeError):
    """A patch operation that cannot go ahead; the message says why and what to do."""


class TreeState(str, enum.Enum):
    PRISTINE = "pristine"  # the whole series applies cleanly, no stamp
    APPLIED = "applied"  # stamped with this series and the series reverses cleanly
    STALE = "stale"  # stamped with another version of the series
    MODIFIED = "modified"  # neither applies nor reverses: edited by hand
    INTERRUPTED = "interrupted"  # an apply or revert was killed half-way (journal left)


@dataclass(frozen=True, slots=True)
class PatchSeries:
    """The ordered patches named in ``<dir>/series`` (quilt style: '#' comments)."""

    directory: Path
    names: tuple[str, ...]

    @classmethod
    def load(cls, directory: str | Path | None = None) -> PatchSeries:
        given = directory or os.environ.get("SGLANG_EXT_PATCHES")
        directory = Path(directory) if directory else default_patches_dir()
        series = directory / "series"
        if not series.is_file():
            if given:
                raise PatchError(
                    f"no patch series at {series}: the patch folder given (argument or "
                    f"SGLANG_EXT_PATCHES) must hold `series` and the patches it names"
                )
            raise PatchError(
                f"no patch series at {series}: this sglang-ext install lacks the patch "
                f"series it ships with; reinstall it (pip install sglang-ext from a "
                f"checkout, or pip install -e . in one), or set SGLANG_EXT_PATCHES to a "
                f"folder holding `series`"
            )
        names = []
        for line in series.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                if not (directory / line).is_file():
                    raise PatchError(f"{series} names {line}, which is not in {directory}")
                names.append(line)
        return cls(directory=directory, names=tuple(names))

    @property
    def paths(self) -> list[Path]:
        return [self.directory / n for n in self.names]

    def digests(self) -> list[dict[str, str]]:
        return [
            {"name": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
            for p in self.paths
        ]

    def digest(self) -> str:
        """One hash over the whole series (names and contents)."""
        h = hashlib.sha256()
        for d in self.digests():
            h.update(f"{d['name']}:{d['sha256']}\n".encode())
        return h.hexdigest()

    def files(self) -> list[str]:
        """Paths (relative to the sglang package) that the series touches."""
        out: list[str] = []
        for p in self.paths:
            for m in re.finditer(r"^\+\+\+ b/(\S+)", p.read_text(), re.M):
                if m.group(1) not in out:
                    out.append(m.group(1))
        return out


def default_patches_dir() -> Path:
    """``$SGLANG_EXT_PATCHES``; else, in a source checkout (editable install), the
    repository's ``patches/``; else the copy built into the package
    (``sglang_ext/_patches``, a wheel or ``pip install git+...``)."""
    env = os.environ.get("SGLANG_EXT_PATCHES")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parents[1]
    checkout = package.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "patches" / "series").is_file():
        return checkout / "patches"
    return package / PACKAGED_PATCHES


def find_installed_sglang() -> Path:
    """The directory of the importable ``sglang`` package, found without importing it."""
    spec = importlib.util.find_spec("sglang")
    if spec is None or not spec.submodule_search_locations:
        raise PatchError(
            "sglang is not installed in this environment: pip install 'sglang==0.4.7' "
            "(or pass --target PATH to an sglang source tree)"
        )
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def tree_version(target: Path) -> str:
    """The ``__version__`` of the sglang tree at ``target``; PatchError if it is none."""
    version_py = target / "version.py"
    if not (target / "srt").is_dir() or not version_py.is_file():
        raise PatchError(
            f"{target} is not an sglang source tree (no srt/ and version.py there): pass "
            f"--target pointing at the sglang package directory, e.g. "
            f".../site-packages/sglang or python/sglang of a git checkout"
        )
    m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)['\"]", version_py.read_text())
    if not m:
        raise PatchError(f"{version_py} holds no __version__")
    return m.group(1)


def _resolve(target: str | Path | None) -> Path:
    path = Path(target).resolve() if target else find_installed_sglang()
    if not path.exists():
        raise PatchError(f"target {path} does not exist")
    version = tree_version(path)
    if version != SGLANG_VERSION:
        raise PatchError(
            f"{path} is sglang {version}, but this patch series is for sglang "
            f"{SGLANG_VERSION}: install sglang=={SGLANG_VERSION} or point --target at a "
            f"{SGLANG_VERSION} tree"
        )
    return path


def _touched(patch: Path) -> list[str]:
    return re.findall(r"^\+\+\+ b/(\S+)", patch.read_text(), re.M)


def _git_apply(stage: Path, patches: list[Path], *, reverse: bool):
    """Apply ``patches`` in order (``git apply``, one call per patch) inside
    ``stage``; stop at the first that fails (its stderr names it).

    (One ``git apply`` over several patches that touch the same file does not chain
    them reliably, so each patch is applied on top of the previous one's result.)
    """
    git = shutil.which("git")
    if git is None:
        raise PatchError("`git` is not on PATH; it is needed to apply patches (apt install git)")
    # keep git from treating an enclosing repository as ours
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(stage.parent))
    done = subprocess.CompletedProcess(args=[], returncode=0, stdout="", stderr="")
    for patch in patches:
        cmd = [git, "apply", "--whitespace=nowarn"] + (["-R"] if reverse else [])
        done = subprocess.run(
            cmd + [str(patch)], cwd=stage, env=env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            done.stderr = f"{patch.name}: {done.stderr.strip()}"
            return done
    return done


def _copy_files(target: Path, stage: Path, files: list[str]) -> None:
    stage.mkdir(parents=True, exist_ok=True)
    for f in files:
        if (target / f).is_file():
            (stage / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(target / f, stage / f)


def _dry_run(target: Path, patches: list[Path], *, reverse: bool):
    """Whether ``patches`` apply (or reverse) on ``target``; the tree is not touched."""
    files = sorted({f for p in patches for f in _touched(p)})
    with staging.stage_dir() as tmp:
        _copy_files(target, tmp / "sglang", files)
        return _git_apply(tmp / "sglang", patches, reverse=reverse)


def _change(
    target: Path, patches: list[Path], *, reverse: bool, stamp: dict | None, op: str
) -> subprocess.CompletedProcess:
    """Apply (or reverse) ``patches`` to ``target`` and write (or remove) the stamp,
    all or nothing: staged first, then moved in through the journal."""
    steps = journal.Steps()
    files = sorted({f for p in patches for f in _touched(p)})
    with staging.stage_dir() as tmp:
        stage = tmp / "sglang"
        _copy_files(target, stage, files + [STAMP_NAME])
        done = _git_apply(stage, patches, reverse=reverse)
        if done.returncode != 0:  # staged: nothing was written
            return done
        if stamp is None:
            (stage / STAMP_NAME).unlink(missing_ok=True)
        else:
            (stage / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
        steps.done("staged")
        changes = [
            journal.Change(path=f, new=stage / f if (stage / f).is_file() else None)
            for f in files + [STAMP_NAME]  # the stamp last: it says the change is whole
        ]
        journal.commit(target, changes, op=op, steps=steps)
        return done


def _read_stamp(target: Path) -> dict | None:
    stamp = target / STAMP_NAME
    if not stamp.is_file():
        return None
    try:
        return json.loads(stamp.read_text())
    except json.JSONDecodeError as e:
        raise PatchError(f"{stamp} is corrupt ({e}); remove it and check the tree") from e


@dataclass(frozen=True, slots=True)
class Status:
    target: Path
    version: str
    state: TreeState
    detail: str


def _interrupted(path: Path, jr: journal.Journal) -> Status:
    cmd = f"python -m sglang_ext.patch {{}} --target {path}"
    before = "patched" if jr.op == "revert" else "pristine"
    detail = (
        f"an `{jr.op}` started {jr.started_at} (pid {jr.pid}) was killed after writing "
        f"{jr.written(path)} of {len(jr.entries)} files; every file is backed up. "
        f"Run `{cmd.format('apply')}` to roll it back and end patched, or "
        f"`{cmd.format('revert')}` to roll it back and end pristine (the tree was "
        f"{before} before it)"
    )
    return Status(target=path, version=SGLANG_VERSION, state=TreeState.INTERRUPTED, detail=detail)


def _status(path: Path, series: PatchSeries) -> Status:
    """:func:`status` for a resolved tree whose lock the caller holds."""
    try:
        jr = journal.read_journal(path)
    except journal.JournalError as e:
        raise PatchError(str(e)) from e
    if jr is not None:
        return _interrupted(path, jr)
    stamp = _read_stamp(path)
    forward = _dry_run(path, series.paths, reverse=False)
    if stamp is None and forward.returncode == 0:  # the common case: one dry run
        backward = None
    else:
        backward = _dry_run(path, series.paths[::-1], reverse=True)
    if stamp is not None and stamp.get("series_sha256") != series.digest():
        state, detail = TreeState.STALE, "patched with another version of the series"
    elif backward is not None and backward.returncode == 0 and forward.returncode != 0:
        state = TreeState.APPLIED
        detail = f"{len(series.names)} patches applied" + ("" if stamp else " (no stamp)")
    elif forward.returncode == 0 and stamp is None:
        state, detail = TreeState.PRISTINE, "no patch applied; the series applies cleanly"
    else:
        state = TreeState.MODIFIED
        detail = "the tree matches neither the pristine nor the patched files:\n" + (
            forward.stderr.strip()
        )
    left = journal.leftover(path)
    if left is not None:
        detail += f" ({left} was left by a run killed before it wrote; the next apply or revert removes it)"
    return Status(target=path, version=SGLANG_VERSION, state=state, detail=detail)


class _Lock:
    """The tree lock, with its timeout reported as a PatchError."""

    def __init__(self, path: Path):
        self._cm = journal.locked(path)

    def __enter__(self):
        try:
            return self._cm.__enter__()
        except journal.JournalError as e:
            raise PatchError(str(e)) from e

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


def _recover(path: Path) -> str:
    """Roll back an interrupted run and drop leftovers; a note for the user ('' if none)."""
    staging.remove_stale_stages()
    try:
        jr = journal.rollback(path)
        journal.discard_leftover(path)
    except journal.JournalError as e:
        raise PatchError(str(e)) from e
    if jr is not None:
        return f"rolled back the interrupted {jr.op} of {jr.started_at}; "
    return ""


def status(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Whether the series is applied to ``target``, and how that was decided.

    Changes nothing in the tree; an interrupted run is reported as
    ``interrupted``, with the command that recovers it."""
    path = _resolve(target)
    series = series or PatchSeries.load()
    staging.remove_stale_stages()
    with _Lock(path):
        return _status(path, series)


def check(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Dry run: raise PatchError unless the whole series applies (or is applied)."""
    st = status(target, series)
    if st.state in (TreeState.MODIFIED, TreeState.STALE, TreeState.INTERRUPTED):
        raise PatchError(f"{st.target}: {st.state.value}: {st.detail}")
    return st


def _with_note(st: Status, note: str) -> Status:
    if not note:
        return st
    return Status(target=st.target, version=st.version, state=st.state, detail=note + st.detail)


def apply(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Apply the whole series or nothing; a no-op (logged) if it is already applied.
    An interrupted earlier run is rolled back first."""
    series = series or PatchSeries.load()
    path = _resolve(target)
    with _Lock(path):
        note = _recover(path)
        st = _status(path, series)
        if st.state is TreeState.APPLIED:
            logger.info("%s: already patched (%s); nothing to do", st.target, st.detail)
            return _with_note(st, note)
        if st.state is TreeState.STALE:
            raise PatchError(
                f"{st.target} carries another version of the series: run `python -m "
                f"sglang_ext.patch revert` with the sglang-ext that applied it, or reinstall "
                f"sglang=={SGLANG_VERSION}"
            )
        if st.state is TreeState.MODIFIED:
            raise PatchError(
                f"{st.target}: the series does not apply, nothing was changed. "
                f"Reinstall a pristine sglang=={SGLANG_VERSION}.\n{st.detail}"
            )
        stamp = {
            "sglang_ext": __version__,
            "sglang": SGLANG_VERSION,
            "series_sha256": series.digest(),
            "patches": series.digests(),
            "applied_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        done = _change(path, series.paths, reverse=False, stamp=stamp, op="apply")
        if done.returncode != 0:  # staged: nothing was written
            raise PatchError(f"git apply failed, nothing was changed:\n{done.stderr}")
        logger.info("%s: applied %d patches", path, len(series.names))
        # the whole series was staged on a pristine tree and moved in: applied
        detail = f"{len(series.names)} patches applied"
        return _with_note(Status(path, SGLANG_VERSION, TreeState.APPLIED, detail), note)


def revert(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Reverse the series (last patch first), restoring the files byte for byte.
    An interrupted earlier run is rolled back first; if that leaves the tree
    pristine, there is nothing more to do."""
    series = series or PatchSeries.load()
    path = _resolve(target)
    with _Lock(path):
        note = _recover(path)
        st = _status(path, series)
        if st.state is TreeState.PRISTINE:
            if note:
                logger.info("%s: %sthe tree is pristine", path, note)
                return _with_note(st, note)
            raise PatchError(f"{st.target} is not patched by sglang-ext: nothing to revert")
        if st.state is not TreeState.APPLIED:
            raise PatchError(
                f"{st.target}: cannot revert, the tree is {st.state.value} ({st.detail}); "
                f"nothing was changed. Reinstall sglang=={SGLANG_VERSION} to start clean."
            )
        done = _change(path, series.paths[::-1], reverse=True, stamp=None, op="revert")
        if done.returncode != 0:
            raise PatchError(f"git apply -R failed, nothing was changed:\n{done.stderr}")
        logger.info("%s: reverted %d patches", path, len(series.names))
        # the whole series was reversed (staged) on an applied tree and moved in
        detail = "no patch applied; the series applies cleanly"
        return _with_note(Status(path, SGLANG_VERSION, TreeState.PRISTINE, detail), note)
