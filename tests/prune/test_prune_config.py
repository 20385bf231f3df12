"""PruneConfig validation, size parsing, calibration prompt sources, CLI parsing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sglang_ext.prune.__main__ import build_parser
from sglang_ext.prune.choice import DEFAULT_PROMPTS, calibration_prompts
from sglang_ext.prune.config import PruneConfig, parse_size, single_expert_config


@pytest.mark.parametrize(
    ("text", "want"),
    [("5GB", 5 * 10**9), ("300KiB", 300 * 1024), ("1.5MB", 1_500_000), ("1234", 1234), (7, 7)],
)
def test_parse_size(text, want):
    assert parse_size(text) == want


@pytest.mark.parametrize("bad", ["5XB", "-1", "0", "lots"])
def test_parse_size_rejects(bad):
    with pytest.raises(ValueError):
        parse_size(bad)


def test_config_validation():
    cfg = PruneConfig(src="a", dst="b", expert=" 3 ")
    assert (cfg.expert, cfg.expert_index, cfg.src) == ("3", 3, Path("a"))
    with pytest.raises(ValueError, match="negative"):
        PruneConfig(src="a", dst="b", expert="-1")
    with pytest.raises(ValueError, match="only apply to --expert most-used"):
        PruneConfig(src="a", dst="b", expert="2", calibration_prompts=("x",))
    with pytest.raises(ValueError, match="cannot read size"):
        PruneConfig(src="a", dst="b", expert="mean", max_shard_size="big")


def test_calibration_sources(tmp_path):
    assert calibration_prompts(PruneConfig(src="a", dst="b", expert="most-used")) == list(
        DEFAULT_PROMPTS
    )
    f = tmp_path / "p.txt"
    f.write_text("first prompt\n\n  second prompt  \n")
    cfg = PruneConfig(
        src="a", dst="b", expert="most-used", calibration_file=f, calibration_prompts=("third",)
    )
    assert calibration_prompts(cfg) == ["first prompt", "second prompt", "third"]
    f.write_text("\n \n")
    with pytest.raises(ValueError, match="no non-empty line"):
        calibration_prompts(cfg)
    cfg.calibration_file = tmp_path / "missing.txt"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        calibration_prompts(cfg)


def test_cli_parses_into_config():
    args = build_parser().parse_args(
        ["S", "D", "--expert", "most-used", "--calibration-max-tokens", "7",
         "--calibration-prompts", "a b", "c"]
    )  # fmt: skip
    cfg = PruneConfig(**vars(args))
    assert cfg.calibration_max_tokens == 7 and cfg.calibration_prompts == ("a b", "c")
    assert cfg.src == Path("S") and cfg.max_shard_size == "5GB"


def test_single_expert_config_keeps_everything_else():
    src = {"model_type": "qwen3_moe", "num_hidden_layers": 2, "num_experts": 4,
           "num_experts_per_tok": 2, "norm_topk_prob": False, "hidden_size": 8, "extra": [1]}  # fmt: skip
    out = single_expert_config(src)
    assert out == src | {"num_experts": 1, "num_experts_per_tok": 1, "norm_topk_prob": True}
    assert src["num_experts"] == 4, "input must not be mutated"
    with pytest.raises(ValueError, match="no MoE layer"):
        single_expert_config(src | {"mlp_only_layers": [0, 1]})
