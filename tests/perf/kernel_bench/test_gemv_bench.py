"""The gemv bench's pieces on the CPU: shape names -> one TP rank's [N, K] (hand-computed),
argument checks, the CLI's refusal without a GPU, and bench_point's rows with a fake timer
(our kernel under the Triton interpreter, in the child process of
``tests/kernels/_gemv_interpret_worker.py``)."""

from __future__ import annotations

import pytest

from sglang_ext.perf.kernel_bench.gemv import GemvBenchArgs, shape_nk
from tests.kernels._gemv_interpret_worker import run_worker


@pytest.mark.parametrize("m", [1, 3])
def test_bench_rows_on_the_cpu_with_a_fake_timer(m):
    res = run_worker("bench")
    assert "__crash__" not in res, res.get("__crash__")
    assert res[f"bench_rows-m{m}"] is None, res[f"bench_rows-m{m}"]


@pytest.mark.parametrize(
    ("name", "nk"),
    [
        # Qwen3-30B-A3B: 32 query heads, 4 KV heads, head_dim 128, hidden 2048
        ("qwen3-30b-qkv", (5120, 2048)),  # (32 + 2 * 4) * 128
        ("qwen3-30b-qkv@tp2", (2560, 2048)),  # (16 + 2 * 2) * 128
        ("qwen3-30b-qkv@tp4", (1280, 2048)),  # (8 + 2 * 1) * 128
        ("qwen3-30b-qkv@tp8", (768, 2048)),  # (4 + 2 * 1) * 128: the KV head is replicated
        ("qwen3-30b-o", (2048, 4096)),
        ("qwen3-30b-o@tp8", (2048, 512)),  # 4 heads * 128
        # Qwen3-235B-A22B: 64 query heads, 4 KV heads, head_dim 128, hidden 4096
        ("qwen3-235b-qkv", (9216, 4096)),  # (64 + 8) * 128
        ("qwen3-235b-qkv@tp4", (2304, 4096)),  # (16 + 2) * 128
        ("qwen3-235b-qkv@tp8", (1280, 4096)),  # (8 + 2) * 128
        ("qwen3-235b-o@tp2", (4096, 4096)),
        # the one expert's tp shard: moe_intermediate_size 768 (30B) and 1536 (235B)
        ("qwen3-30b-gate_up", (1536, 2048)),  # 2 * 768
        ("qwen3-30b-down", (2048, 768)),
        ("qwen3-235b-gate_up@tp4", (768, 4096)),  # 2 * 1536 / 4
        ("qwen3-235b-down@tp8", (4096, 192)),  # 1536 / 8
    ],
)
def test_shape_names(name, nk):
    assert shape_nk(name) == nk


def test_bad_arguments():
    with pytest.raises(ValueError, match="write <model>-<qkv|o>"):
        shape_nk("qwen3-7b-qkv")
    with pytest.raises(ValueError, match="tp 3 must divide the 32 query heads"):
        shape_nk("qwen3-30b-o@tp3")
    with pytest.raises(ValueError, match="tp 5 must divide I=768"):
        shape_nk("qwen3-30b-down@tp5")
    with pytest.raises(ValueError, match="write <model>-<qkv|o>"):
        GemvBenchArgs(shapes=["qwen3-30b-qkv", "qwen3-30b-mlp"])
    with pytest.raises(ValueError, match="n<BLOCK_N>k<BLOCK_K>"):
        GemvBenchArgs(configs=["n16k512w4s3"])
    with pytest.raises(ValueError, match="block_n=8: a power of two >= 16"):
        GemvBenchArgs(configs=["n16k512w4s3d1", "n8k512w4s3d1"])  # refused before GPU time
    with pytest.raises(ValueError, match=r"each in 1..32"):
        GemvBenchArgs(batch_sizes=[1, 33])
    with pytest.raises(ValueError, match=r"each in 1..32"):
        GemvBenchArgs(batch_sizes=[0])


def test_cli_parses_and_refuses_without_a_gpu(capsys):
    import torch

    from sglang_ext.perf.kernel_bench.gemv import main

    if torch.cuda.is_available():
        pytest.skip("this checks the CPU refusal")
    argv = ["--shapes", "qwen3-30b-o@tp4", "--batch-sizes", "1", "8", "--configs", "n16k512w4s3d0"]
    assert main(argv) == 2
    assert "needs a CUDA GPU" in capsys.readouterr().err
