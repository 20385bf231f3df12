"""The CUDA one-launch kernel (csrc/) builds with nvcc on a machine without a GPU.

CPU CI has nvcc but no GPU and a CPU torch: the .cu has no torch headers, so nvcc builds it
alone, for Hopper (sm_90a), as the shared library the loader would make.  Loading that
library and asking it for a launch plan checks the C ABI the ctypes wrapper declares: a bad
shape is refused before any device call (cudaErrorInvalidValue), and a good one reaches the
CUDA runtime, which says there is no usable device here.  Skipped only when nvcc is absent.
"""

from __future__ import annotations

import ctypes
import re
import shutil
from pathlib import Path

import pytest

from sglang_ext.kernels import cuda_onelaunch

NVCC = shutil.which("nvcc")
pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not on PATH: cannot compile csrc/")
CUDA_ERROR_INVALID_VALUE = 1


@pytest.fixture(scope="module")
def built_lib(tmp_path_factory):
    build = tmp_path_factory.mktemp("onelaunch")
    flags = ["-O3", "-std=c++17", "-gencode=arch=compute_90a,code=sm_90a"]
    try:
        path = cuda_onelaunch._nvcc_build(
            cuda_onelaunch.csrc_dir(), build, flags, str(Path(NVCC).resolve().parents[1])
        )
    except RuntimeError as e:
        pytest.fail(f"csrc/fused_mlp_onelaunch.cu does not compile:\n{e}")
    return path


def test_compiles_for_sm90a_every_instantiation(built_lib):
    data = built_lib.read_bytes()
    assert b"sm_90a" in data, "no sm_90a code in the library"
    names = set(
        re.findall(rb"fused_mlp_onelaunch_kernelI(?:6__half|13__nv_bfloat16)Li(\d+)E", data)
    )
    assert {int(n) for n in names} == {1, 2, 4, 8, 16, 32}, names  # one per M tile
    assert b"__half" in data and b"__nv_bfloat16" in data


def test_c_abi_checks_shapes_before_touching_the_device(built_lib):
    lib = cuda_onelaunch._bind(built_lib)
    out4 = (ctypes.c_int * 4)()
    plan = lib.sglang_ext_fused_mlp_onelaunch_plan
    for bad in [(33, 2048, 96), (0, 2048, 96), (1, 2044, 96), (1, 2048, 92), (1, 2048, 96, 5)]:
        m, h, i, *dt = bad
        err = plan(m, h, i, dt[0] if dt else 0, 2, 0, out4)
        assert err == CUDA_ERROR_INVALID_VALUE, f"{bad}: {err}"
    assert b"invalid argument" in lib.sglang_ext_cuda_error_string(CUDA_ERROR_INVALID_VALUE)
    err = plan(1, 2048, 96, 0, 2, 0, out4)  # a valid shape: the runtime finds no GPU here
    assert err != 0 and err != CUDA_ERROR_INVALID_VALUE
    err = lib.sglang_ext_fused_mlp_onelaunch(1, 16, 16, 16, 16, 1, 2048, 96, 0, 2, 0, None)
    assert err != 0, "a launch without a GPU must report an error"


def test_supports_bounds():
    import torch

    assert cuda_onelaunch.supports(1, 2048, 96, torch.bfloat16)
    assert cuda_onelaunch.supports(32, 4096, 1536, torch.float16)
    assert not cuda_onelaunch.supports(33, 2048, 96, torch.bfloat16)
    assert not cuda_onelaunch.supports(4, 2044, 96, torch.bfloat16)
    assert not cuda_onelaunch.supports(4, 2048, 100, torch.bfloat16)
    assert not cuda_onelaunch.supports(4, 2048, 96, torch.float32)
