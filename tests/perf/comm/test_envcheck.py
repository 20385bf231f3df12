"""Environment check: versions, GPU facts, and the patch status line against known truths.

The status is checked on trees whose state this test makes itself, without the patch tool:
a copy of the pristine 0.4.7 files, the same files patched with plain ``git apply``, and a
hand-edited copy.  The installed sglang is classified by comparing its bytes with those.
"""

import hashlib
import os
import shutil
import subprocess

import pytest
import torch

from sglang_ext.patching import PatchSeries
from sglang_ext.perf.comm.envcheck import env_report, patch_status
from tests._support.pristine import pristine_sglang


def test_env_report_fields():
    rep = env_report()
    assert {"env", "gpus", "nccl", "peer_access", "topology", "patch_status"} <= set(rep)
    assert rep["env"]["versions"]["torch"] == torch.__version__
    assert len(rep["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """{'pristine', 'patched', 'edited'}: minimal sglang trees (version.py, srt/, the
    files the series touches), made from the PyPI release and plain ``git apply``."""
    src, series = pristine_sglang(), PatchSeries.load()
    root = tmp_path_factory.mktemp("status_trees")
    out = {}
    for name in ("pristine", "patched", "edited"):
        t = root / name / "sglang"
        (t / "srt").mkdir(parents=True)
        shutil.copy2(src / "version.py", t / "version.py")
        for f in series.files():
            if (src / f).is_file():
                (t / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src / f, t / f)
        out[name] = t
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(root))
    for patch in series.paths:
        subprocess.run(["git", "apply", str(patch)], cwd=out["patched"], env=env, check=True)
    victim = out["edited"] / series.files()[0]  # a hand edit in the middle of a touched file
    lines = victim.read_text().splitlines(keepends=True)
    del lines[: len(lines) // 2]
    victim.write_text("".join(lines))
    return out


def test_status_of_trees_in_known_states(trees):
    n = len(PatchSeries.load().names)
    assert ": sglang 0.4.7: pristine (" in patch_status(trees["pristine"])
    assert f": sglang 0.4.7: applied ({n} patches applied" in patch_status(trees["patched"])
    assert ": sglang 0.4.7: modified (" in patch_status(trees["edited"])
    bad = patch_status(trees["pristine"].parent / "nowhere")
    assert "failed (1)" in bad and "does not exist" in bad


def _digest(tree, files) -> str:
    h = hashlib.sha256()
    for f in files:
        p = tree / f
        h.update(f.encode() + b"\0" + (p.read_bytes() if p.is_file() else b"<absent>"))
    return h.hexdigest()


def test_installed_sglang_status_matches_its_bytes(trees):
    pytest.importorskip("sglang")
    from sglang_ext.patching.source import find_installed_sglang

    files = PatchSeries.load().files()
    have = _digest(find_installed_sglang(), files)
    want = {
        _digest(trees["pristine"], files): "pristine",
        _digest(trees["patched"], files): "applied",
    }.get(have, "modified")
    assert f": sglang 0.4.7: {want} (" in patch_status()
