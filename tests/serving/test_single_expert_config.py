"""SingleExpertConfig: user-facing variables in, one JSON variable to the ranks, bad values named."""

import json
import os
import subprocess
import sys

import pytest

from sglang_ext.serving import config as cfg
from sglang_ext.serving.config import CONFIG_ENV, SingleExpertConfig, rank_config


@pytest.fixture(autouse=True)
def _fresh_rank_config(monkeypatch):
    for name in (CONFIG_ENV, "SINGLE_EXPERT_MODE", cfg.DP_ROUTING_ENV, cfg.FUSED_MLP_ENV,
                 cfg.GRAPH_METADATA_ENV, cfg.PDL_ENV, cfg.FUSED_NORM_ENV,
                 cfg.FUSED_ATTENTION_ENV, cfg.FUSED_INPUTS_ENV):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    rank_config.cache_clear()
    yield
    rank_config.cache_clear()


@pytest.mark.parametrize(
    "environ,flag,expected",
    [
        ({}, None, (None, "random", True)),
        ({"SINGLE_EXPERT_MODE": ""}, None, (None, "random", True)),
        (
            {
                "SINGLE_EXPERT_MODE": "DP",
                "SINGLE_EXPERT_DP_ROUTING": " Round_Robin ",
                "SGLANG_EXT_FUSED_MLP": "off",
            },
            None,
            ("dp", "round_robin", False),
        ),
        ({"SINGLE_EXPERT_MODE": "dp", "SGLANG_EXT_FUSED_MLP": "1"}, "tp", ("tp", "random", True)),
        ({"SGLANG_EXT_FUSED_MLP": "No"}, "dp", ("dp", "random", False)),
    ],
)
def test_user_variables(environ, flag, expected):
    c = SingleExpertConfig.from_user_env(environ, mode_flag=flag)
    assert (c.mode, c.dp_routing, c.fused_mlp) == expected
    assert c.graph_metadata is True and c.pdl is False  # unset: metadata on, PDL off
    assert c.fused_norm is True  # unset: the norms inside the linears (patch 0023)
    assert c.fused_attention is True  # unset: the one-launch decode attention (patch 0024)
    assert c.fused_inputs is True  # unset: one launch each for the step's bookkeeping (0025)


@pytest.mark.parametrize("raw, on", [("0", False), (" OFF", False), ("yes", True), ("", True)])
def test_graph_metadata_switch(raw, on):
    assert SingleExpertConfig.from_user_env({"SGLANG_EXT_GRAPH_METADATA": raw}).graph_metadata is on


@pytest.mark.parametrize("raw, on", [("0", False), ("no", False), ("1", True), ("", True)])
def test_fused_norm_switch(raw, on):
    c = SingleExpertConfig.from_user_env({"SGLANG_EXT_FUSED_NORM": raw})
    assert c.fused_norm is on and c.fused_mlp is True and c.pdl is False


@pytest.mark.parametrize("raw, on", [("0", False), ("Off", False), ("true", True), ("", True)])
def test_fused_attention_switch(raw, on):
    c = SingleExpertConfig.from_user_env({"SGLANG_EXT_FUSED_ATTENTION": raw})
    assert c.fused_attention is on and c.fused_norm is True and c.pdl is False


@pytest.mark.parametrize("raw, on", [("0", False), ("NO", False), ("yes", True), ("", True)])
def test_fused_inputs_switch(raw, on):
    c = SingleExpertConfig.from_user_env({"SGLANG_EXT_FUSED_INPUTS": raw})
    assert c.fused_inputs is on and c.fused_attention is True and c.pdl is False


def test_a_bad_fused_inputs_value_names_the_variable():
    with pytest.raises(ValueError, match="SGLANG_EXT_FUSED_INPUTS='2'"):
        SingleExpertConfig.from_user_env({"SGLANG_EXT_FUSED_INPUTS": "2"})


@pytest.mark.parametrize("raw, on", [("0", False), ("False", False), ("on", True), ("", False)])
def test_pdl_switch(raw, on):
    c = SingleExpertConfig.from_user_env({"SGLANG_EXT_PDL": raw})
    assert c.pdl is on and c.graph_metadata is True and c.fused_mlp is True


@pytest.mark.parametrize(
    "environ,match",
    [
        ({"SINGLE_EXPERT_MODE": "ep"}, r"SINGLE_EXPERT_MODE='ep'.*'tp'.*'dp'"),
        ({"SINGLE_EXPERT_DP_ROUTING": "rr"}, r"SINGLE_EXPERT_DP_ROUTING='rr'.*round_robin"),
        ({"SGLANG_EXT_FUSED_MLP": "maybe"}, r"SGLANG_EXT_FUSED_MLP='maybe'.*use 0.*or 1"),
        ({"SGLANG_EXT_GRAPH_METADATA": "2"}, r"SGLANG_EXT_GRAPH_METADATA='2'.*use 0.*or 1"),
        ({"SGLANG_EXT_PDL": "pdl"}, r"SGLANG_EXT_PDL='pdl'.*use 0.*or 1"),
        ({"SGLANG_EXT_FUSED_NORM": "x"}, r"SGLANG_EXT_FUSED_NORM='x'.*use 0.*or 1"),
        ({"SGLANG_EXT_FUSED_ATTENTION": "y"}, r"SGLANG_EXT_FUSED_ATTENTION='y'.*use 0.*or 1"),
    ],
)
def test_bad_user_variable_is_named(environ, match):
    with pytest.raises(ValueError, match=match):
        SingleExpertConfig.from_user_env(environ)


@pytest.mark.parametrize(
    "text,match",
    [
        ("{mode: dp}", r"SGLANG_EXT_CONFIG is not JSON.*unset SGLANG_EXT_CONFIG"),
        ('["dp"]', r"SGLANG_EXT_CONFIG='\[\"dp\"\]' is not an object"),
        ('{"mode": "dp", "seed": 3}', r"SGLANG_EXT_CONFIG: unknown keys \['seed'\]"),
        ('{"mode": "ep"}', r"SGLANG_EXT_CONFIG: mode='ep' is not a single-expert mode"),
        ('{"dp_routing": "rr"}', r"SGLANG_EXT_CONFIG: dp_routing='rr'"),
        ('{"fused_mlp": "yes"}', r"SGLANG_EXT_CONFIG: fused_mlp='yes': use True or False"),
        ('{"graph_metadata": 1}', r"SGLANG_EXT_CONFIG: graph_metadata=1: use True or False"),
        ('{"pdl": "on"}', r"SGLANG_EXT_CONFIG: pdl='on': use True or False"),
    ],
)
def test_bad_config_variable_is_named(text, match):
    with pytest.raises(ValueError, match=match):
        SingleExpertConfig.from_env({CONFIG_ENV: text})


def test_fields_are_keyword_only_and_validated():
    with pytest.raises(TypeError):
        SingleExpertConfig("dp")  # kw_only
    with pytest.raises(ValueError, match="mode='DP'"):
        SingleExpertConfig(mode="DP")  # the user-facing parser normalises, the object does not


def test_export_is_json_and_wins_over_user_variables():
    env = {"SINGLE_EXPERT_MODE": "tp", "SGLANG_EXT_FUSED_MLP": "1"}
    SingleExpertConfig(mode="dp", dp_routing="round_robin", fused_mlp=False).export(env)
    assert json.loads(env[CONFIG_ENV]) == {
        "mode": "dp",
        "dp_routing": "round_robin",
        "fused_attention": True,
        "fused_inputs": True,
        "fused_mlp": False,
        "fused_norm": True,
        "graph_metadata": True,
        "pdl": False,
    }
    got = SingleExpertConfig.from_env(env)  # the JSON, not SINGLE_EXPERT_MODE=tp
    assert (got.mode, got.dp_routing, got.fused_mlp) == ("dp", "round_robin", False)


def test_a_spawned_rank_reads_what_the_launcher_exported(monkeypatch):
    """The only channel to sglang's ranks is the environment: a child process sees it."""
    monkeypatch.setenv(CONFIG_ENV, "")  # teardown restores the variable export() writes
    SingleExpertConfig(mode="dp", dp_routing="round_robin", fused_mlp=False).export()
    monkeypatch.setenv("SINGLE_EXPERT_MODE", "tp")  # ignored: the exported object wins
    code = "from sglang_ext.serving.config import rank_config as r; print(r().to_json())"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.splitlines()[-1]) == {
        "mode": "dp",
        "dp_routing": "round_robin",
        "fused_attention": True,
        "fused_inputs": True,
        "fused_mlp": False,
        "fused_norm": True,
        "graph_metadata": True,
        "pdl": False,
    }


def test_rank_config_reads_once(monkeypatch):
    monkeypatch.setenv("SINGLE_EXPERT_MODE", "dp")
    first = rank_config()
    assert first.mode == "dp"  # no SGLANG_EXT_CONFIG: the user-facing variable
    monkeypatch.setenv("SINGLE_EXPERT_MODE", "tp")
    assert rank_config() is first
