"""A built sglang-ext (sdist -> wheel, as ``python -m build`` makes it) installed
away from the repository finds its patch series from any directory."""

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from sglang_ext.patching import PatchError, PatchSeries, source

REPO = Path(__file__).resolve().parents[2]
BUILD_INPUTS = (
    "pyproject.toml",
    "setup.py",
    "MANIFEST.in",
    "README.md",
    "patches",
    "csrc",
    "sglang_ext",
)

pytestmark = pytest.mark.slow


def run(cmd, *, cwd, env=None, timeout=180):
    out = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert out.returncode == 0, f"{cmd} failed (rc {out.returncode}):\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The checkout's build inputs, an sdist of them, a wheel built from the unpacked
    sdist, and that wheel installed with ``pip install --target``."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    code = "from setuptools import build_meta as b; print(b.build_sdist('dist'))"
    sdist = src / "dist" / run([sys.executable, "-c", code], cwd=src).stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(root / "sdist", filter="data")
    (unpacked,) = (root / "sdist").iterdir()
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", str(root / "whl"),
         str(unpacked)], cwd=root)  # fmt: skip
    (wheel,) = (root / "whl").glob("sglang_ext-*.whl")
    site = root / "site"
    run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)], cwd=root)
    outside = root / "elsewhere"  # not the repository, nor above it
    outside.mkdir()
    return {"src": src, "site": site, "outside": outside, "root": root}


def env_for(built, **extra) -> dict[str, str]:
    """Only the installed copy is importable (PYTHONPATH comes before the editable
    finder of the development install); no patch folder is given."""
    env = {k: v for k, v in os.environ.items() if k not in ("SGLANG_EXT_PATCHES", "PYTHONPATH")}
    return env | {"PYTHONPATH": str(built["site"])} | extra


def test_series_is_package_data(built):
    packaged = built["site"] / "sglang_ext" / source.PACKAGED_PATCHES
    want = {p.name: p.read_bytes() for p in (built["src"] / "patches").iterdir()}
    got = {p.name: p.read_bytes() for p in packaged.iterdir()}
    assert got == want, f"the wheel's series differs: {sorted(set(got) ^ set(want))}"
    # and the CUDA kernel's source, which cuda_onelaunch builds with nvcc on first use
    csrc = built["site"] / "sglang_ext" / "_csrc"
    want = {p.name: p.read_bytes() for p in (built["src"] / "csrc").iterdir()}
    assert {p.name: p.read_bytes() for p in csrc.iterdir()} == want


def test_patch_check_from_another_directory(built, pristine_tree):
    env = env_for(built)
    where = run(
        [sys.executable, "-c", "import sglang_ext.patching.source as s; "
         "print(s.__file__); print(s.default_patches_dir())"],
        cwd=built["outside"], env=env,
    ).stdout.split()  # fmt: skip
    assert where[0].startswith(str(built["site"])), f"imported the wrong sglang_ext: {where}"
    assert where[1] == str(built["site"] / "sglang_ext" / source.PACKAGED_PATCHES), where

    target = built["root"] / "pristine" / "sglang"
    if not target.exists():
        shutil.copytree(pristine_tree, target)
    patch = [sys.executable, "-m", "sglang_ext.patch"]
    out = run([*patch, "check", "--target", str(target)], cwd=built["outside"], env=env)
    assert f"{target}: sglang 0.4.7: pristine" in out.stdout, out.stdout
    out = run([*patch, "status"], cwd=built["outside"], env=env)  # the installed sglang
    assert ": sglang 0.4.7: " in out.stdout, out.stdout

    # SGLANG_EXT_PATCHES still wins over the packaged copy
    empty = built["root"] / "no_series"
    empty.mkdir(exist_ok=True)
    bad = subprocess.run(
        [*patch, "check", "--target", str(target)], cwd=built["outside"],
        env=env_for(built, SGLANG_EXT_PATCHES=str(empty)), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert bad.returncode == 1 and f"no patch series at {empty}/series" in bad.stderr, bad.stderr


def test_missing_series_message_names_no_flag(monkeypatch, tmp_path):
    """launch_server has no --patches flag: the library's message must not offer one."""
    monkeypatch.delenv("SGLANG_EXT_PATCHES", raising=False)
    monkeypatch.setattr(source, "default_patches_dir", lambda: tmp_path)
    with pytest.raises(PatchError) as e:
        PatchSeries.load()
    assert "--patches" not in str(e.value) and "SGLANG_EXT_PATCHES" in str(e.value)
    assert "reinstall" in str(e.value)


def test_launch_server_help_has_no_side_effects(built):
    cache = built["root"] / "fresh_cache"
    out = subprocess.run(
        [sys.executable, "-m", "sglang_ext.launch_server", "--help"], cwd=built["outside"],
        env=env_for(built, SGLANG_EXT_CACHE=str(cache)), capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert out.returncode == 0, f"--help failed (rc {out.returncode}):\n{out.stderr[-3000:]}"
    assert "--single-expert-mode" in out.stdout
    made = sorted(str(p.relative_to(cache)) for p in cache.rglob("*")) if cache.exists() else []
    assert not made, f"--help created {made[:10]} under SGLANG_EXT_CACHE"
