"""Launcher checks and the env switch (no kernel launch needed)."""

import pytest
import torch

from sglang_ext.kernels import fused_mlp
from sglang_ext.kernels.fused_mlp import fused_swiglu_mlp, is_available
from sglang_ext.kernels.fused_mlp_configs import MlpLaunchConfig, get_config, heuristic_config


def _inputs(m=3, h=64, i=32, dtype=torch.float16):
    return (
        torch.randn(m, h, dtype=dtype),
        torch.randn(2 * i, h, dtype=dtype),
        torch.randn(h, i, dtype=dtype),
    )


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda x, a, b: (x, a[:, :-1], b), r"w13 must be \[2\*I, H=64\]"),
        (lambda x, a, b: (x, a[:-1], b), r"w13 must be \[2\*I"),
        (lambda x, a, b: (x, a, b.t().contiguous()), r"w2 must be \[H, I\]"),
        (lambda x, a, b: (x[None], a, b), r"x must be 2-D"),
        (lambda x, a, b: (x, a.float(), b), r"w13.dtype=torch.float32 differs"),
        (lambda x, a, b: (x.to(torch.int8), a, b), r"x.dtype=torch.int8: use bfloat16"),
        (lambda x, a, b: (x.t(), a, b), r"unit stride"),
    ],
)
def test_bad_input_names_the_problem(bad, match):
    x, a, b = bad(*_inputs())
    with pytest.raises((ValueError, TypeError), match=match):
        fused_swiglu_mlp(x, a, b)


def test_bad_out_rejected():
    x, a, b = _inputs()
    with pytest.raises(ValueError, match="out must be"):
        fused_swiglu_mlp(x, a, b, out=torch.empty(3, 65, dtype=x.dtype))


def test_cpu_without_interpreter_says_what_to_do(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        fused_swiglu_mlp(*_inputs())


def test_env_switch(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.setenv(fused_mlp.ENV_SWITCH, "0")
    assert not is_available("cpu")
    monkeypatch.setenv(fused_mlp.ENV_SWITCH, "1")
    assert is_available("cpu")
    monkeypatch.delenv("TRITON_INTERPRET")
    assert not is_available("cpu")


def test_config_validation_and_fallback(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="power of two"):
        MlpLaunchConfig(block_m=24)
    with pytest.raises(ValueError, match="k_splits"):
        MlpLaunchConfig(k_splits=0)
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP_CONFIG_DIR", str(tmp_path))
    assert get_config(4, 2048, 96, "Nonexistent GPU") == heuristic_config(4, 2048, 96)
    # a table with one entry: the nearest M (in log2) wins
    from sglang_ext.kernels.fused_mlp_configs import config_path

    p = config_path("Fake GPU")
    p.parent.mkdir(parents=True)
    two = MlpLaunchConfig(block_m=64, block_n=256)
    body = {"H=2048,I=96": {"1": {"k_splits": 7}, "4096": two.to_dict()}}
    p.write_text(__import__("json").dumps(body))
    assert get_config(2, 2048, 96, "Fake GPU").k_splits == 7
    assert get_config(3000, 2048, 96, "Fake GPU") == two
    assert get_config(2, 4096, 96, "Fake GPU") == heuristic_config(2, 4096, 96)


def test_merge_table_keeps_other_shapes_and_m(tmp_path):
    from sglang_ext.perf.kernel_bench.tune import merge_table

    p = tmp_path / "t.json"
    a, b = MlpLaunchConfig(k_splits=3), MlpLaunchConfig(block_m=64)
    merge_table(p, 2048, 96, {1: a, 4096: b})
    merge_table(p, 4096, 192, {1: b})
    merge_table(p, 2048, 96, {1: b})  # re-tune one M: the other M stays
    t = __import__("json").loads(p.read_text())
    assert MlpLaunchConfig(**t["H=2048,I=96"]["1"]) == b
    assert MlpLaunchConfig(**t["H=2048,I=96"]["4096"]) == b
    assert MlpLaunchConfig(**t["H=4096,I=192"]["1"]) == b
    assert list(t["H=2048,I=96"]) == ["1", "4096"]


def test_experimental_kernels_stay_off_the_production_import_path():
    import subprocess
    import sys

    code = (
        "import sys; from sglang_ext.kernels import fused_mlp, fused_mlp_dispatch; "
        "from sglang_ext.layers import single_expert_moe; "
        "print([m for m in sys.modules if m.startswith('sglang_ext.kernels.experimental')])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
