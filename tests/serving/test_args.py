"""launch_server's command-line plan: defaults, the EP/TP layout rule, bad input."""

import json

import pytest

from sglang_ext.serving.args import flag_value, plan_launch
from sglang_ext.serving.config import SingleExpertConfig
from sglang_ext.serving.layout import moe_ep_group_ranks, moe_ep_size


def plan(argv, cuda=False, sgl_kernel=True):
    return plan_launch(argv, cuda=cuda, sgl_kernel=sgl_kernel, default_model_path=lambda: "/m")


def test_default_model_and_cpu_flags():
    p = plan(["--port", "1234"])
    assert p.default_model and flag_value(p.sglang_argv, "--model-path") == "/m"
    for flag, value in [
        ("--device", "cpu"),
        ("--attention-backend", "torch_native"),
        ("--dtype", "float32"),
        ("--port", "1234"),
    ]:
        assert flag_value(p.sglang_argv, flag) == value


def test_user_flags_win():
    p = plan(["--model-path", "/x", "--attention-backend", "triton", "--max-total-tokens=99"])
    assert not p.default_model
    assert flag_value(p.sglang_argv, "--attention-backend") == "triton"
    assert flag_value(p.sglang_argv, "--max-total-tokens") == "99"
    assert p.sglang_argv.count("--attention-backend") == 1


def test_cuda_without_sgl_kernel_picks_portable_backends():
    p = plan(["--model-path", "/x"], cuda=True, sgl_kernel=False)
    assert flag_value(p.sglang_argv, "--attention-backend") == "triton"
    assert flag_value(p.sglang_argv, "--sampling-backend") == "pytorch"
    assert flag_value(p.sglang_argv, "--device") is None


def test_dp_mode_spans_the_tp_group():
    p = plan(["--single-expert-mode", "dp", "--tp-size", "2"])
    assert p.single_expert_mode == "dp"
    assert flag_value(p.sglang_argv, "--ep-size") == "2"


def test_original_ep_launch_is_rewritten_to_what_it_meant():
    p = plan(
        [
            "--single-expert-mode",
            "dp",
            "--tp-size",
            "4",
            "--dp-size",
            "2",
            "--enable-ep-moe",
            "--ep-size",
            "8",
        ]
    )
    a = p.sglang_argv
    assert flag_value(a, "--tp-size") == "8" and flag_value(a, "--dp-size") == "2"
    assert flag_value(a, "--ep-size") == "8" and "--enable-dp-attention" in a
    assert "--enable-ep-moe" not in a and a.count("--tp-size") == 1


def test_layout_that_cannot_be_honoured():
    with pytest.raises(ValueError, match=r"--ep-size must equal --tp-size.*--tp-size x --dp-size"):
        plan(["--single-expert-mode", "dp", "--tp-size", "4", "--ep-size", "3"])
    with pytest.raises(ValueError, match=r"got --ep-size 16, --tp-size 8\)"):  # not rewritten
        argv = ["--tp-size", "8", "--dp-size", "2", "--enable-dp-attention", "--ep-size", "16"]
        plan(["--single-expert-mode", "dp", *argv])


@pytest.mark.parametrize(
    "tp,ep,dp_mode,expected",
    [
        (4, None, False, 4),  # no --ep-size: the EP group is the TP group
        (4, 2, False, 2),
        (4, 1, False, 1),
        (1, 1, True, 1),
        (2, 2, True, 2),
        (4, None, True, 4),
    ],
)
def test_ep_layout_rule(tp, ep, dp_mode, expected):
    assert moe_ep_size(tp_size=tp, ep_size=ep, single_expert_dp=dp_mode) == expected


@pytest.mark.parametrize(
    "tp,ep,dp_mode,match",
    [
        (4, 3, False, r"--ep-size 3 must divide --tp-size 4"),
        (4, 8, False, r"--ep-size 8 must divide --tp-size 4"),
        (4, 0, False, r"--ep-size 0 must divide"),
        (4, 2, True, r"--ep-size must equal --tp-size \(got --ep-size 2, --tp-size 4\)"),
        (0, None, False, r"--tp-size must be >= 1"),
    ],
)
def test_ep_layout_rule_refusals(tp, ep, dp_mode, match):
    with pytest.raises(ValueError, match=match):
        moe_ep_size(tp_size=tp, ep_size=ep, single_expert_dp=dp_mode)


def test_ep_group_ranks():
    assert moe_ep_group_ranks(world_size=8, tp_size=4, ep_size=2) == [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
    ]
    assert moe_ep_group_ranks(world_size=4, tp_size=4, ep_size=4) == [[0, 1, 2, 3]]
    assert moe_ep_group_ranks(world_size=2, tp_size=2, ep_size=1) == [[0], [1]]
    with pytest.raises(ValueError, match="world size 6 is not a multiple of --tp-size 4"):
        moe_ep_group_ranks(world_size=6, tp_size=4, ep_size=2)


def test_plan_carries_the_rank_config(monkeypatch):
    monkeypatch.setenv("SINGLE_EXPERT_DP_ROUTING", "round_robin")
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP", "0")
    p = plan(["--single-expert-mode", "dp", "--tp-size", "2"])
    assert p.rank_config == SingleExpertConfig(mode="dp", dp_routing="round_robin", fused_mlp=False)
    monkeypatch.setenv("SINGLE_EXPERT_DP_ROUTING", "sideways")
    with pytest.raises(ValueError, match="SINGLE_EXPERT_DP_ROUTING='sideways'"):
        plan([])


def test_env_mode_and_bad_value(monkeypatch):
    monkeypatch.setenv("SINGLE_EXPERT_MODE", "DP")
    assert plan(["--tp-size", "2"]).single_expert_mode == "dp"
    assert plan(["--single-expert-mode", "tp"]).single_expert_mode == "tp"  # CLI wins
    monkeypatch.setenv("SINGLE_EXPERT_MODE", "ep")
    with pytest.raises(ValueError, match="SINGLE_EXPERT_MODE"):
        plan([])


def test_multi_expert_model_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"num_experts": 128}))
    with pytest.raises(ValueError, match="prune it first"):
        plan(["--model-path", str(tmp_path), "--single-expert-mode", "tp"])
    # without the flag, a many-expert model is sglang's business
    assert plan(["--model-path", str(tmp_path)]).single_expert_mode is None
