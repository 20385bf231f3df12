"""The gemv Triton kernel vs float64 on the CPU interpreter, and its refusals.

float32 and float16 only (bf16 under the interpreter is unreliable; the GPU bench checks it
against fp32).  M 1, 3, 8, 16, 17, 32; (N, K) (48, 64), (100, 264), (256, 1032); tensor-core
and CUDA-core launches, blocks that do not divide N or K; with and without bias; dense and
NaN-padded strided views; out prefilled with NaN.  The cases and their tolerances:
``_gemv_interpret_worker`` (one child process).  The refusals run here, without the
interpreter: each raises before any launch.
"""

import pytest
import torch
import triton
from _gemv_interpret_worker import case_ids, run_worker

from sglang_ext.kernels import gemv as gemv_mod
from sglang_ext.kernels.gemv import GemvConfig, default_config, gemv


@pytest.mark.parametrize("case", case_ids())
def test_gemv_matches_float64(case):
    res = run_worker("kernel")
    if "__crash__" in res:
        pytest.fail(res["__crash__"])
    assert case in res, f"worker did not run {case}"
    assert res[case] is None, f"{case}: {res[case]}"


def _t(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((_t(33, 64), _t(48, 64)), {}, "M=33 tokens > 32: use F.linear"),
        ((_t(64), _t(48, 64)), {}, r"x must be \[M, K\] and w \[N, K\]"),
        ((_t(2, 64), _t(48, 64, dtype=torch.float16)), {}, "w is torch.float16, x is torch.float32"),
        ((_t(2, 64, dtype=torch.int32), _t(48, 64, dtype=torch.int32)), {}, "supported: bfloat16"),
        ((_t(2, 64), _t(64, 48).t()), {}, r"contiguous rows \(stride\(1\) == 1\)"),
        ((_t(64, 2).t(), _t(48, 64)), {}, r"contiguous rows \(stride\(1\) == 1\)"),
        ((_t(2, 12), _t(48, 12)), {}, "K=12 must be a multiple of 8"),
        ((_t(2, 64), _t(48, 72)), {}, "x has K=64 columns, w has 72"),
        ((_t(2, 64), _t(48, 64), _t(47)), {}, r"bias must be a contiguous \[48\]"),
        ((_t(2, 64), _t(48, 64)), {"out": _t(2, 47)}, r"out must be \[2, 48\]"),
        ((_t(2, 64), _t(48, 64)), {"out": _t(48, 2).t()}, r"out must be \[2, 48\] with stride"),
        ((_t(2, 64), _t(48, 64)), {"out": _t(2, 48, dtype=torch.float16)}, "out is torch.float16"),
        ((_t(3, 64), _t(48, 64)), {"config": GemvConfig(16, 64, use_dot=False)},
         r"n16k64w4s3d0 \(use_dot=0\) needs M == 1, got M=3"),
    ],
)  # fmt: skip
def test_refusals_before_any_launch(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gemv(*args, **kwargs)


def test_cpu_tensors_need_the_interpreter():
    if not gemv_mod._COMPILED:
        pytest.skip("this process runs Triton's interpreter")
    with pytest.raises(ValueError, match="needs CUDA tensors"):
        gemv(_t(2, 64), _t(48, 64))


def test_config_names_and_validation():
    assert GemvConfig.parse("n64k256w4s3d1") == GemvConfig(64, 256, 4, 3, True)
    assert GemvConfig(8, 32, 2, 1, use_dot=False).name == "n8k32w2s1d0"
    assert GemvConfig.parse("n16k256w4s3d1p4") == GemvConfig(16, 256, 4, 3, True, 4)
    assert GemvConfig(16, 256, split_k=4).name == "n16k256w4s3d1p4"
    assert GemvConfig.parse("n16k256w4s3d1p1").name == "n16k256w4s3d1"  # p1: no split
    with pytest.raises(ValueError, match="split_k=17: 1..16"):
        GemvConfig.parse("n16k256w4s3d1p17")
    with pytest.raises(ValueError, match="split_k=0"):
        GemvConfig(16, 256, split_k=0)
    with pytest.raises(ValueError, match="n<BLOCK_N>k<BLOCK_K>w<num_warps>s<num_stages>d"):
        GemvConfig.parse("n64k256w4s3")
    with pytest.raises(ValueError, match="block_n=48: a power of two >= 16"):
        GemvConfig(48, 256)
    with pytest.raises(ValueError, match="block_n=8: a power of two >= 16"):
        GemvConfig(8, 256)  # tl.dot needs 16 rows
    with pytest.raises(ValueError, match="block_k=8: a power of two >= 16"):
        GemvConfig(16, 8)
    with pytest.raises(ValueError, match="num_warps=3"):
        GemvConfig(16, 256, num_warps=3)
    with pytest.raises(ValueError, match="num_stages=0"):
        GemvConfig(16, 256, num_stages=0)


# (N, K) of Qwen3-30B-A3B / 235B-A22B qkv and o_proj at TP 1, 2, 4, 8 (tests/perf has the math)
SHAPES = [(5120, 2048), (2560, 2048), (1280, 2048), (768, 2048), (2048, 4096), (2048, 2048),
          (2048, 1024), (2048, 512), (9216, 4096), (4608, 4096), (2304, 4096), (1280, 4096),
          (4096, 8192), (4096, 4096), (4096, 2048), (4096, 1024)]  # fmt: skip


def test_default_config_fills_the_gpu_as_far_as_n_allows():
    """The grid is cdiv(N, block_n) programs (no split-K): at least 2 per SM of an H200 (132)
    where 16-row blocks give that many, else the most there are (16 rows)."""
    for n, k in SHAPES:
        for m in range(1, 33):
            c = default_config(m, n, k)
            assert c.use_dot, (m, n, k, c.name)
            assert triton.cdiv(n, c.block_n) >= min(2 * 132, triton.cdiv(n, 16)), (m, n, k)
            assert c.block_k <= k, (m, n, k, c.name)  # no loop step mostly masked
