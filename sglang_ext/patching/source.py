"""Check, apply and revert ``patches/series`` on an sglang 0.4.7 source tree.

The target is the ``sglang`` package directory: ``site-packages/sglang`` of a pip
install, or ``python/sglang`` of a git checkout. Patch paths are relative to it
(``a/srt/models/qwen3_moe.py``).

Guarantees:
- a tree that is not sglang 0.4.7 is refused, naming the version found;
- ``apply`` dry-runs the whole series first and changes nothing unless all of it
  applies: the patches are applied one by one (``git apply``) to a staging copy of
  the files they touch, and only a complete result is moved into the tree;
- a stamp file records the series applied (names and sha256), so applying twice
  is a no-op that says so;
- ``revert`` runs ``git apply -R`` over the reversed series, restoring the files
  byte for byte, then removes the stamp.
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
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sglang_ext import SGLANG_VERSION, __version__

__all__ = [
    "PatchError",
    "PatchSeries",
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


class PatchError(RuntimeError):
    """A patch operation that cannot go ahead; the message says why and what to do."""


class TreeState(str, enum.Enum):
    PRISTINE = "pristine"  # the whole series applies cleanly, no stamp
    APPLIED = "applied"  # stamped with this series and the series reverses cleanly
    STALE = "stale"  # stamped with another version of the series
    MODIFIED = "modified"  # neither applies nor reverses: edited by hand or half-patched


@dataclass(frozen=True, slots=True)
class PatchSeries:
    """The ordered patches named in ``<dir>/series`` (quilt style: '#' comments)."""

    directory: Path
    names: tuple[str, ...]

    @classmethod
    def load(cls, directory: str | Path | None = None) -> PatchSeries:
        directory = Path(directory) if directory else default_patches_dir()
        series = directory / "series"
        if not series.is_file():
            raise PatchError(
                f"no patch series at {series}: pass --patches DIR pointing at sglang-ext's "
                f"patches/ folder (or set SGLANG_EXT_PATCHES)"
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
    env = os.environ.get("SGLANG_EXT_PATCHES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "patches"


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


def _git_apply(target: Path, patches: list[Path], *, reverse: bool, check_only: bool):
    """Apply ``patches`` in order (``git apply``, one call per patch) to a staging copy
    of the files they touch; unless ``check_only``, then move the results into
    ``target``. All or nothing: if any patch fails, ``target`` is untouched.

    (One ``git apply`` over several patches that touch the same file does not chain
    them reliably, so each patch is applied on top of the previous one's result.)
    """
    git = shutil.which("git")
    if git is None:
        raise PatchError("`git` is not on PATH; it is needed to apply patches (apt install git)")
    files = sorted({f for p in patches for f in _touched(p)})
    with tempfile.TemporaryDirectory(prefix="sglang_ext_stage_") as tmp:
        stage = Path(tmp) / "sglang"
        for f in files:
            if (target / f).is_file():
                (stage / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(target / f, stage / f)
        stage.mkdir(exist_ok=True)
        # keep git from treating an enclosing repository as ours
        env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(stage.parent))
        done = subprocess.CompletedProcess(args=[], returncode=0, stdout="", stderr="")
        for patch in patches:
            cmd = [git, "apply", "--whitespace=nowarn"] + (["-R"] if reverse else [])
            done = subprocess.run(
                cmd + [str(patch)], cwd=stage, env=env, capture_output=True, text=True
            )
            if done.returncode != 0:
                done.stderr = f"{patch.name}: {done.stderr.strip()}"
                return done
        if not check_only:
            for f in files:
                src, dst = stage / f, target / f
                if src.is_file():
                    part = dst.with_name(f".{dst.name}.sglang_ext_tmp")
                    shutil.copy2(src, part)
                    os.replace(part, dst)
                elif dst.is_file():  # the patch deleted it
                    dst.unlink()
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


def status(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Whether the series is applied to ``target``, and how that was decided."""
    path = _resolve(target)
    series = series or PatchSeries.load()
    stamp = _read_stamp(path)
    forward = _git_apply(path, series.paths, reverse=False, check_only=True)
    backward = _git_apply(path, series.paths[::-1], reverse=True, check_only=True)
    if stamp is not None and stamp.get("series_sha256") != series.digest():
        state, detail = TreeState.STALE, "patched with another version of the series"
    elif backward.returncode == 0 and forward.returncode != 0:
        state = TreeState.APPLIED
        detail = f"{len(series.names)} patches applied" + ("" if stamp else " (no stamp)")
    elif forward.returncode == 0 and stamp is None:
        state, detail = TreeState.PRISTINE, "no patch applied; the series applies cleanly"
    else:
        state = TreeState.MODIFIED
        detail = "the tree matches neither the pristine nor the patched files:\n" + (
            forward.stderr.strip()
        )
    return Status(target=path, version=SGLANG_VERSION, state=state, detail=detail)


def check(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Dry run: raise PatchError unless the whole series applies (or is applied)."""
    st = status(target, series)
    if st.state in (TreeState.MODIFIED, TreeState.STALE):
        raise PatchError(f"{st.target}: {st.state.value}: {st.detail}")
    return st


def apply(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Apply the whole series or nothing; a no-op (logged) if it is already applied."""
    series = series or PatchSeries.load()
    st = status(target, series)
    if st.state is TreeState.APPLIED:
        logger.info("%s: already patched (%s); nothing to do", st.target, st.detail)
        return st
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
    done = _git_apply(st.target, series.paths, reverse=False, check_only=False)
    if done.returncode != 0:  # staged: nothing was written
        raise PatchError(f"git apply failed, nothing was changed:\n{done.stderr}")
    stamp = {
        "sglang_ext": __version__,
        "sglang": SGLANG_VERSION,
        "series_sha256": series.digest(),
        "patches": series.digests(),
        "applied_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    (st.target / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n")
    logger.info("%s: applied %d patches", st.target, len(series.names))
    return status(st.target, series)


def revert(target: str | Path | None = None, series: PatchSeries | None = None) -> Status:
    """Reverse the series (last patch first), restoring the files byte for byte."""
    series = series or PatchSeries.load()
    st = status(target, series)
    if st.state is TreeState.PRISTINE:
        raise PatchError(f"{st.target} is not patched by sglang-ext: nothing to revert")
    if st.state is not TreeState.APPLIED:
        raise PatchError(
            f"{st.target}: cannot revert, the tree is {st.state.value} ({st.detail}); "
            f"nothing was changed. Reinstall sglang=={SGLANG_VERSION} to start clean."
        )
    done = _git_apply(st.target, series.paths[::-1], reverse=True, check_only=False)
    if done.returncode != 0:
        raise PatchError(f"git apply -R failed, nothing was changed:\n{done.stderr}")
    (st.target / STAMP_NAME).unlink(missing_ok=True)
    logger.info("%s: reverted %d patches", st.target, len(series.names))
    return status(st.target, series)
