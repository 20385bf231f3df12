"""The patch series against the pristine sglang 0.4.7 release (fetched from PyPI)."""

import logging
import subprocess
import sys

import pytest

from sglang_ext.patching import PatchError, TreeState, apply, check, revert, status
from sglang_ext.patching.source import STAMP_NAME
from tests._support.trees import snapshot


def test_check_apply_reapply_revert_round_trip(tree, series, caplog):
    before = snapshot(tree)
    assert check(tree, series).state is TreeState.PRISTINE
    assert snapshot(tree) == before, "check must not change the tree"

    st = apply(tree, series)
    assert st.state is TreeState.APPLIED
    after = snapshot(tree)
    changed = {f for f in before if after.get(f) != before[f]}
    assert changed == set(series.files()), "apply changed files the series does not name"
    assert STAMP_NAME in after

    caplog.set_level(logging.INFO)
    assert apply(tree, series).state is TreeState.APPLIED
    assert snapshot(tree) == after, "a second apply must change nothing"
    assert "already patched" in caplog.text

    assert revert(tree, series).state is TreeState.PRISTINE
    assert snapshot(tree) == before, "revert must restore every file byte for byte"


def test_wrong_version_is_refused_and_untouched(tree, series):
    version_py = tree / "version.py"
    version_py.write_text(version_py.read_text().replace("0.4.7", "0.4.6.post1"))
    before = snapshot(tree)
    with pytest.raises(PatchError, match=r"sglang 0\.4\.6\.post1.*0\.4\.7"):
        apply(tree, series)
    assert snapshot(tree) == before


def test_not_an_sglang_tree(tmp_path, series):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(PatchError, match="not an sglang source tree"):
        apply(tmp_path, series)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_revert_of_unpatched_tree_is_refused(tree, series):
    before = snapshot(tree)
    with pytest.raises(PatchError, match="not patched"):
        revert(tree, series)
    assert snapshot(tree) == before


def test_apply_is_all_or_nothing(tree, series):
    # edit a context line of the LAST patch's first hunk: the earlier patches would still apply
    last = series.paths[-1].read_text().splitlines()
    target = next(ln[len("+++ b/") :] for ln in last if ln.startswith("+++ b/"))
    hunk = last[next(i for i, ln in enumerate(last) if ln.startswith("@@")) + 1 :]
    context = next(ln[1:] for ln in hunk if ln.startswith(" ") and len(ln.strip()) > 8)
    path = tree / target
    assert context in path.read_text()
    path.write_text(path.read_text().replace(context, context + "  # edited by hand", 1))
    before = snapshot(tree)
    assert status(tree, series).state is TreeState.MODIFIED
    with pytest.raises(PatchError, match="nothing was changed"):
        apply(tree, series)
    assert snapshot(tree) == before, "a failed apply left the tree half-patched"


def test_source_checkout_layout(tmp_path, pristine_tree, series):
    """python/sglang inside a git clone: the enclosing repository must not matter."""
    import shutil

    repo = tmp_path / "sglang-repo"
    shutil.copytree(pristine_tree, repo / "python" / "sglang")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    target = repo / "python" / "sglang"
    before = snapshot(target)
    assert apply(target, series).state is TreeState.APPLIED
    assert revert(target, series).state is TreeState.PRISTINE
    assert snapshot(target) == before


def test_cli_exit_codes(tree, tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "sglang_ext.patch", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = run("apply", "--target", str(tree))
    assert ok.returncode == 0 and "applied" in ok.stdout, ok.stderr
    assert ": applied (" in run("status", "--target", str(tree)).stdout
    bad = run("apply", "--target", str(tmp_path))
    assert bad.returncode == 1 and "not an sglang source tree" in bad.stderr
    assert run("revert", "--target", str(tree)).returncode == 0
    again = run("revert", "--target", str(tree))
    assert again.returncode == 1 and "nothing to revert" in again.stderr
