"""``apply`` and ``revert`` killed at many points never leave a half-patched tree.

Each run is the real CLI (``python -m sglang_ext.patch``) in a subprocess, held by
the test hook ``SGLANG_EXT_PATCH_TEST_PAUSE_AFTER`` after a chosen step and then
killed. The references are independent of the code under test: the pristine
sglang 0.4.7 release as unpacked from PyPI, and a clean, uninterrupted apply.
"""

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from sglang_ext.patching import PatchError, PatchSeries, TreeState, apply, revert, status
from sglang_ext.patching.journal import JOURNAL_DIR, PAUSE_ENV, PAUSE_MARKER
from sglang_ext.patching.source import STAMP_NAME
from sglang_ext.patching.staging import STAGE_PREFIX
from tests._support.trees import snapshot

REPO = Path(__file__).resolve().parents[2]
PAUSE_DEADLINE_S = 60.0


def normalized(tree: Path) -> dict[str, bytes]:
    """The tree's files, with the stamp's time of application left out."""
    snap = snapshot(tree)
    if STAMP_NAME in snap:
        stamp = json.loads(snap[STAMP_NAME])
        stamp.pop("applied_at")
        snap[STAMP_NAME] = json.dumps(stamp, sort_keys=True).encode()
    return snap


@pytest.fixture(scope="module")
def frozen(tmp_path_factory):
    """A copy of the series, so that an edit of patches/ during the test cannot
    change what the children apply (they get it through SGLANG_EXT_PATCHES)."""
    dst = tmp_path_factory.mktemp("series")
    for f in PatchSeries.load().directory.iterdir():
        if f.is_file():
            shutil.copy2(f, dst / f.name)
    return PatchSeries.load(dst)


def slim_copy(pristine_tree: Path, series, dst: Path) -> Path:
    """The release's files that the series touches, plus what marks an sglang tree
    (``version.py``, ``srt/``): byte for byte the release, and quick to compare."""
    for rel in [*series.files(), "version.py"]:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(pristine_tree / rel, dst / rel)
    return dst


@pytest.fixture(scope="module")
def refs(tmp_path_factory, pristine_tree, frozen):
    """Byte references: the pristine release, and the same after one clean apply."""
    pristine = slim_copy(pristine_tree, frozen, tmp_path_factory.mktemp("ref") / "sglang")
    clean = slim_copy(pristine_tree, frozen, tmp_path_factory.mktemp("clean") / "sglang")
    apply(clean, frozen)
    for rel, data in snapshot(pristine).items():
        assert data == (pristine_tree / rel).read_bytes()
    return {"pristine": snapshot(pristine), "patched": normalized(clean)}


@pytest.fixture()
def tree(tmp_path, pristine_tree, frozen):
    return slim_copy(pristine_tree, frozen, tmp_path / "sglang")


@pytest.fixture()
def series(frozen, monkeypatch):
    """The frozen series, here and (through the environment) in the children."""
    monkeypatch.setenv("SGLANG_EXT_PATCHES", str(frozen.directory))
    return frozen


@pytest.fixture()
def private_tmp(tmp_path, monkeypatch):
    """A temp dir of our own, for the children (TMPDIR) and for this process,
    so that staging folders left behind can be counted."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def stages(tmp: Path) -> list[str]:
    return [p.name for p in tmp.glob(STAGE_PREFIX + "*")]


def paused(op: str, tree: Path, point: str, tmp: Path) -> subprocess.Popen:
    """``python -m sglang_ext.patch OP`` held after ``point``; fails if it never gets there."""
    env = dict(os.environ, **{PAUSE_ENV: point, "TMPDIR": str(tmp)})
    # started with SIGINT ignored, as a job started with `&` from a script (or by a CI
    # runner that does so) inherits it: Ctrl-C/SIGINT must still roll back
    proc = subprocess.Popen(
        [sys.executable, "-m", "sglang_ext.patch", op, "--target", str(tree)],
        cwd=REPO, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )  # fmt: skip
    deadline = time.monotonic() + PAUSE_DEADLINE_S
    err = []
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stderr, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not sel.select(timeout=deadline - time.monotonic()):
                break
            line = proc.stderr.readline()
            if not line:  # it ended without pausing
                proc.wait(10)
                pytest.fail(f"{op} never reached {point} (rc {proc.returncode}):\n{''.join(err)}")
            err.append(line)
            if PAUSE_MARKER in line:
                return proc
    proc.kill()
    proc.wait(10)
    pytest.fail(f"{op} did not pause at {point} within {PAUSE_DEADLINE_S:.0f} s:\n{''.join(err)}")


def kill(proc: subprocess.Popen, sig: int) -> int:
    proc.send_signal(sig)
    try:
        rc = proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"the patch process ignored signal {sig} for 30 s")
    proc.stderr.close()
    return rc


def n_changes(series) -> int:
    return len(series.files()) + 1  # every touched file, then the stamp


def points(series, op: str) -> list[str]:
    """Kill points: before the first write, in the backups, right after the journal,
    at the first, a middle, the last-but-one and the last move (the stamp), and
    after the commit."""
    n = n_changes(series)
    if op == "apply":
        return ["staged", "backup:2", "journal", "move:1", f"move:{n // 2}", f"move:{n}", "commit"]
    return ["backup:2", "journal", "move:1", f"move:{n - 1}", "commit"]


def assert_clean(tree: Path, tmp: Path, want: dict[str, bytes], what: str) -> None:
    got = normalized(tree)
    extra = sorted(set(got) - set(want))
    missing = sorted(set(want) - set(got))
    differ = sorted(f for f in set(got) & set(want) if got[f] != want[f])
    assert not (extra or missing or differ), (
        f"{what}: tree not byte-identical to the reference: extra {extra[:5]}, "
        f"missing {missing[:5]}, different {differ[:5]}"
    )
    assert not stages(tmp), f"{what}: staging folders left: {stages(tmp)}"


def expected_changed(point: str, n: int) -> int:
    """How many files a run killed after ``point`` has written (of ``n``)."""
    kind, _, k = point.partition(":")
    return {"move": int(k or 0), "commit": n}.get(kind, 0)


def changed_files(tree: Path, before: dict[str, bytes]) -> set[str]:
    got = normalized(tree)
    changed = {f for f in before if got.get(f) != before[f]} | (set(got) - set(before))
    return {f for f in changed if not f.startswith(JOURNAL_DIR)}


def test_sigkill_at_many_points_then_recover(tree, series, refs, private_tmp):
    """SIGKILL apply and revert at every kind of step. ``status`` names the state
    (and, mid-change, the commands that recover it); the next apply or revert, each
    meeting both kinds of interrupted run, ends byte-identical to the pristine
    release or to a clean apply, with no staging folder left."""
    n = n_changes(series)
    todo = {op: points(series, op) for op in ("apply", "revert")}
    kills = {"apply": 0, "revert": 0}
    state, seen = "pristine", set()
    while todo["apply"] or todo["revert"]:
        op = "apply" if state == "pristine" else "revert"
        if not todo[op]:  # only the other kind is left: flip the tree cleanly
            (apply if op == "apply" else revert)(tree, series)
            state = "patched" if op == "apply" else "pristine"
            continue
        point = todo[op].pop(0)
        # alternately recover with the same command and with the other one
        other = "revert" if op == "apply" else "apply"
        recover = op if kills[op] % 2 == 0 else other
        kills[op] += 1
        what = f"{op} killed after {point}, recovered by {recover}"
        before = refs["pristine"] if op == "apply" else refs["patched"]

        rc = kill(paused(op, tree, point, private_tmp), signal.SIGKILL)
        assert rc == -signal.SIGKILL, what
        assert stages(private_tmp), f"{what}: expected the killed run's staging folder"
        changed = changed_files(tree, before)
        assert len(changed) == expected_changed(point, n), f"{what}: {sorted(changed)}"

        st = status(tree, series)
        kind = point.partition(":")[0]
        if kind in ("journal", "move"):
            assert st.state is TreeState.INTERRUPTED, f"{what}: {st}"
            assert f"`{op}`" in st.detail, st.detail
            assert f"writing {len(changed)} of {n} files" in st.detail, st.detail
            for cmd in ("apply", "revert"):
                assert f"python -m sglang_ext.patch {cmd} --target {tree}" in st.detail
        else:  # nothing written yet, or committed
            done = kind == "commit"
            pristine_now = (op == "apply") != done
            assert st.state is (TreeState.PRISTINE if pristine_now else TreeState.APPLIED), (
                f"{what}: {st}"
            )
        assert not stages(private_tmp), f"{what}: status left the dead run's staging folder"

        state = "patched" if recover == "apply" else "pristine"
        if recover == "revert" and st.state is TreeState.PRISTINE:  # nothing was written
            with pytest.raises(PatchError, match="nothing to revert"):
                revert(tree, series)
        else:
            end = (apply if recover == "apply" else revert)(tree, series)
            assert end.state is (TreeState.APPLIED if state == "patched" else TreeState.PRISTINE)
        assert_clean(tree, private_tmp, refs[state], what)
        seen.add((op, recover, kind))
    for op in ("apply", "revert"):
        for recover in ("apply", "revert"):
            assert (op, recover, "move") in seen, f"never recovered a killed {op} by {recover}"


def test_cli_status_names_the_interruption(tree, series, private_tmp):
    kill(paused("apply", tree, "move:3", private_tmp), signal.SIGKILL)
    out = subprocess.run(
        [sys.executable, "-m", "sglang_ext.patch", "status", "--target", str(tree)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env=dict(os.environ, TMPDIR=str(private_tmp)),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"{tree}: sglang 0.4.7: interrupted (an `apply`" in out.stdout, out.stdout
    assert "writing 3 of" in out.stdout and "every file is backed up" in out.stdout
    check = subprocess.run(
        [sys.executable, "-m", "sglang_ext.patch", "check", "--target", str(tree)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 1 and "interrupted" in check.stderr, check.stderr


@pytest.mark.parametrize(
    ("op", "point", "sig"),
    [
        ("apply", "move:5", signal.SIGINT),
        ("apply", "backup:3", signal.SIGINT),
        ("apply", "journal", signal.SIGTERM),
        ("revert", "move:1", signal.SIGINT),
    ],
)
def test_ctrl_c_rolls_back_at_once(tree, series, refs, private_tmp, op, point, sig):
    """Ctrl-C (or SIGTERM) mid-change: the run rolls back before it exits (130),
    so the tree is as before, with no journal and no staging folder."""
    if op == "revert":
        apply(tree, series)
    before = "pristine" if op == "apply" else "patched"
    proc = paused(op, tree, point, private_tmp)
    assert changed_files(tree, refs[before]) or point.startswith(("journal", "backup"))
    assert kill(proc, sig) == 130, f"{op} after {point}: signal {sig}"
    assert_clean(tree, private_tmp, refs[before], f"{op} interrupted by {sig} after {point}")
    want = TreeState.PRISTINE if before == "pristine" else TreeState.APPLIED
    assert status(tree, series).state is want


def test_killed_rollback_is_rerun(tree, series, refs, private_tmp):
    """A rollback is itself interruptible: kill the recovering apply half-way
    through restoring, and the next run still ends byte-identical."""
    kill(paused("apply", tree, "move:6", private_tmp), signal.SIGKILL)
    kill(paused("apply", tree, "restore:3", private_tmp), signal.SIGKILL)
    assert len(changed_files(tree, refs["pristine"])) == 3, "restore:3 put back 3 of 6 files"
    assert status(tree, series).state is TreeState.INTERRUPTED
    assert revert(tree, series).state is TreeState.PRISTINE
    assert_clean(tree, private_tmp, refs["pristine"], "revert after a killed rollback")
