"""The stand-in's provider switch (``SGLANG_EXT_STANDIN_IMPL``), flashinfer's shape checks and
its JIT-cache folder, on the CPU (no flashinfer here: its presence is faked where needed).

The selection table is the documented rule, written out case by case; the error cases go
through a real stand-in op.
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import sglang_ext.compat.sgl_kernel as sk
from sglang_ext.compat import flashinfer_jit, flashinfer_ops
from sglang_ext.compat.sgl_kernel import _impl

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CUDA, CPU = SimpleNamespace(is_cuda=True), SimpleNamespace(is_cuda=False)  # provider reads is_cuda

# (switch, flashinfer imports, tensor) -> provider, from the _impl docstring
TABLE = [
    (None, True, CUDA, "triton"),  # auto: Triton, measured faster on the H200
    (None, False, CUDA, "triton"),
    (None, True, CPU, "torch"),
    ("auto", True, CUDA, "triton"),
    ("auto", False, CUDA, "triton"),
    ("auto", False, CPU, "torch"),
    ("flashinfer", True, CUDA, "flashinfer"),
    ("flashinfer", True, CPU, "torch"),
    ("triton", True, CUDA, "triton"),
    ("triton", False, CPU, "triton"),
    ("torch", True, CUDA, "torch"),
    ("torch", False, CPU, "torch"),
]


def _fake_flashinfer(monkeypatch, present: bool):
    result = (SimpleNamespace(), "") if present else (None, "flashinfer is not installed")
    monkeypatch.setattr(flashinfer_jit, "_load", lambda: result)


@pytest.mark.parametrize("switch,present,t,want", TABLE)
def test_provider_follows_the_switch(switch, present, t, want, monkeypatch):
    _fake_flashinfer(monkeypatch, present)
    if switch is None:
        monkeypatch.delenv(_impl.IMPL_ENV, raising=False)
    else:
        monkeypatch.setenv(_impl.IMPL_ENV, switch)
    assert _impl.provider(t) == want
    assert _impl.use_triton(t) == (want != "torch")  # ops without flashinfer kernels


def test_forced_flashinfer_without_it_is_a_clear_error(monkeypatch):
    _fake_flashinfer(monkeypatch, False)
    monkeypatch.setenv(_impl.IMPL_ENV, "flashinfer")
    x, w = torch.randn(3, 8), torch.ones(8)
    for call in (
        lambda: sk.rmsnorm(x, w),
        lambda: sk.silu_and_mul(torch.randn(3, 16)),
        lambda: sk.topk_softmax(torch.empty(3, 1), torch.empty(3, 1, dtype=torch.int32),
                                torch.empty(3, 1, dtype=torch.int32), torch.randn(3, 4)),
    ):  # fmt: skip
        with pytest.raises(RuntimeError, match=r"flashinfer is not installed.*IMPL=triton"):
            call()


def test_unknown_switch_value_names_the_choices(monkeypatch):
    monkeypatch.setenv(_impl.IMPL_ENV, "cuda")
    with pytest.raises(ValueError, match=r"SGLANG_EXT_STANDIN_IMPL='cuda'.*flashinfer"):
        sk.rmsnorm(torch.randn(2, 4), torch.ones(4))


def test_auto_off_cuda_keeps_the_torch_numerics(monkeypatch):
    # flashinfer "present" changes nothing for CPU tensors: the float32 reference runs
    _fake_flashinfer(monkeypatch, True)
    monkeypatch.delenv(_impl.IMPL_ENV, raising=False)
    x = torch.randn(5, 64, dtype=torch.float64).float()
    w = torch.rand(64) + 0.5
    want = x.double() / torch.sqrt((x.double() ** 2).mean(-1, keepdim=True) + 1e-6) * w.double()
    torch.testing.assert_close(sk.rmsnorm(x, w, 1e-6).double(), want, rtol=1e-6, atol=1e-6)


def test_flashinfer_shape_checks():
    bf = torch.bfloat16
    x, w = torch.randn(4, 256, dtype=bf), torch.ones(256, dtype=bf)
    assert flashinfer_ops.norm_ok(x, w, torch.empty_like(x))
    assert not flashinfer_ops.norm_ok(x.float(), w.float()), "fp32 has no flashinfer kernel"
    assert not flashinfer_ops.norm_ok(x, w.float()), "weight of another dtype"
    assert not flashinfer_ops.norm_ok(x.view(4, 2, 128), torch.ones(128, dtype=bf)), "3-D"
    wide = torch.randn(4, 256 + 6, dtype=bf)
    assert not flashinfer_ops.norm_ok(wide[:, 3:259], w), "rows off 16-byte alignment"
    assert flashinfer_ops.norm_ok(torch.randn(4, 512, dtype=bf)[:, :256], w), "aligned rows"
    assert not flashinfer_ops.norm_ok(x[:0], w), "no rows"

    h = torch.randn(3, 2 * 768, dtype=bf)
    assert flashinfer_ops.gated_ok(h, torch.empty(3, 768, dtype=bf))
    assert not flashinfer_ops.gated_ok(h[:, :1000], torch.empty(3, 500, dtype=bf)), "strided"
    h2 = torch.randn(3, 2 * 100, dtype=bf)  # 100 bf16 = 200 bytes: not whole 16-byte vectors
    assert not flashinfer_ops.gated_ok(h2, torch.empty(3, 100, dtype=bf))

    t, hq, hk = 5, 4, 2
    cache, pos = torch.randn(64, 128), torch.arange(t)
    for hd, ok in ((128, True), (64, True), (32, False), (96, False)):
        qkv = torch.randn(t, (hq + 2 * hk) * hd, dtype=bf)
        q, k, _ = qkv.split([hq * hd, hk * hd, hk * hd], -1)
        c = cache[:, :hd]
        assert flashinfer_ops.rope_ok(pos, q, k, hd, c.contiguous()) == ok, hd
    q, k, _ = torch.randn(t, 8 * 128, dtype=bf).split([4 * 128, 2 * 128, 2 * 128], -1)
    assert not flashinfer_ops.rope_ok(pos, q, None, 128, cache), "no key"
    assert not flashinfer_ops.rope_ok(pos, q.float(), k.float(), 128, cache), "fp32"
    assert not flashinfer_ops.rope_ok(pos, q, k, 128, cache[:, :8].contiguous()), "rot 8"


def test_cache_folder_is_keyed_and_exported(monkeypatch, tmp_path):
    monkeypatch.setenv(flashinfer_jit.CACHE_ENV, str(tmp_path / "fi"))
    monkeypatch.delenv("FLASHINFER_WORKSPACE_BASE", raising=False)
    monkeypatch.setattr(flashinfer_jit.importlib.metadata, "version", lambda name: "0.2.6.post1")
    base = flashinfer_jit._workspace_from_env()
    key = f"flashinfer-0.2.6.post1_torch-{torch.__version__}".replace("+", "_")
    assert base == (tmp_path / "fi" / key).resolve()
    assert flashinfer_jit.os.environ["FLASHINFER_WORKSPACE_BASE"] == str(base)
    assert flashinfer_jit._workspace_from_env() == base, "a second call agrees with the first"
    monkeypatch.setenv("FLASHINFER_WORKSPACE_BASE", str(tmp_path / "other"))
    with pytest.raises(ValueError, match="unset one of the two"):
        flashinfer_jit._workspace_from_env()


def test_imported_flashinfer_is_pointed_at_the_cache(tmp_path):
    # flashinfer's jit/env.py names, as after an import with the default base ($HOME)
    home = tmp_path / "home" / ".cache" / "flashinfer" / "90"
    env = SimpleNamespace(FLASHINFER_WORKSPACE_DIR=home, FLASHINFER_JIT_DIR=home / "cached_ops",
                          FLASHINFER_AOT_DIR=tmp_path / "site" / "flashinfer" / "data" / "aot")  # fmt: skip
    flashinfer_jit._point(env, tmp_path / "cache")
    ws = tmp_path / "cache" / ".cache" / "flashinfer" / "90"
    assert env.FLASHINFER_JIT_DIR == ws / "cached_ops"
    assert env.FLASHINFER_GEN_SRC_DIR == ws / "generated"
    assert env.FLASHINFER_AOT_DIR == ws / "cached_ops", "built modules must load without ninja"


def test_cli_without_flashinfer_says_how_to_get_it(monkeypatch, capsys):
    _fake_flashinfer(monkeypatch, False)
    assert flashinfer_jit.main(["--build"]) == 2
    assert "flashinfer_python-0.2.6.post1.tar.gz" in capsys.readouterr().err


SDIST = ROOT / ".whl" / "sdist" / "flashinfer_python-0.2.6.post1.tar.gz"


@pytest.fixture(scope="module")
def flashinfer_src(tmp_path_factory):
    if not SDIST.exists():
        pytest.skip(f"{SDIST} absent (../shared/tools/device-wheels.sh .whl --flashinfer)")
    dst = tmp_path_factory.mktemp("fi")
    with tarfile.open(SDIST) as tf:
        tf.extractall(dst, filter="data")
    return next(dst.iterdir())  # flashinfer_python-0.2.6.post1/ (the package and egg-info)


@pytest.mark.parametrize("order", ["late", "early"])
def test_real_flashinfer_builds_into_and_loads_from_the_cache(order, flashinfer_src, tmp_path):
    env = {**os.environ, "SGLANG_EXT_FLASHINFER_CACHE": str(tmp_path / "c"),
           "TORCH_CUDA_ARCH_LIST": "9.0", "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": str(tmp_path / "home"),  # flashinfer's default workspace, kept out of ~
           "PYTHONPATH": os.pathsep.join([str(flashinfer_src), str(ROOT)])}  # fmt: skip
    env.pop("FLASHINFER_WORKSPACE_BASE", None)
    proc = subprocess.run([sys.executable, str(HERE / "_flashinfer_cache_worker.py"), order],
                          env=env, capture_output=True, text=True, timeout=180)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    key = f"flashinfer-0.2.6.post1_torch-{torch.__version__}".replace("+", "_")
    ws = (tmp_path / "c" / key / ".cache" / "flashinfer" / "90").resolve()
    assert res["norm_ninja"] == str(ws / "cached_ops" / "norm" / "build.ninja"), res
    assert res["silu_source"] == str(ws / "generated" / "silu_and_mul.cu"), res
    assert not res["prebuilt_before"] and res["prebuilt_after"], res
    assert res["loads"] == str(ws / "cached_ops" / "norm" / "norm.so"), res
