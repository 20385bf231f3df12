"""The study's TOML config: defaults fill the gaps, bad keys and values get clear errors."""

import math
import subprocess
import sys

import pytest

from sglang_ext.study.config import STEPS, ConfigError, load_config
from tests._support.paths import REPO_ROOT


def _toml(tmp_path, text):
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


def test_file_overrides_only_what_it_names(tmp_path):
    p = _toml(
        tmp_path,
        '[serving]\nqps = [1, 2.5, inf]\nrepeats = 3\n[model]\npreset = "qwen3-30b-a3b-1e"\n',
    )
    cfg = load_config("quick", p)
    assert cfg.serving.qps == (1.0, 2.5, math.inf)  # ints widened, inf kept, list -> tuple
    assert cfg.serving.repeats == 3
    assert cfg.model.preset == "qwen3-30b-a3b-1e"
    quick = load_config("quick")
    assert cfg.serving.num_prompts == quick.serving.num_prompts  # left out: the mode's default
    assert cfg.latency == quick.latency and cfg.steps == STEPS


def test_comprehensive_defaults_differ_from_quick():
    q, c = load_config("quick"), load_config("comprehensive")
    assert max(c.scaling.tp_sizes) == 8 and c.serving.repeats >= 3
    assert c.serving.num_prompts > q.serving.num_prompts


def test_unknown_key_names_it_and_the_valid_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config("quick", _toml(tmp_path, "[serving]\nqsp = [1]\n"))
    msg = str(e.value)
    assert "'serving.qsp'" in msg and "'qps'" in msg and "repeats" in msg
    with pytest.raises(ConfigError, match=r"unknown key 'sevring'.*'serving'"):
        load_config("quick", _toml(tmp_path, "[sevring]\nqps = [1]\n"))


def test_wrong_types_and_values(tmp_path):
    with pytest.raises(ConfigError, match=r"serving.repeats must be an integer, got '3'"):
        load_config("quick", _toml(tmp_path, '[serving]\nrepeats = "3"\n'))
    with pytest.raises(ConfigError, match=r"serving.qps must be a list"):
        load_config("quick", _toml(tmp_path, "[serving]\nqps = 4\n"))
    with pytest.raises(ConfigError, match=r"unknown steps \['serve'\].*'serving'"):
        load_config("quick", _toml(tmp_path, 'steps = ["env", "serve"]\n'))
    with pytest.raises(ConfigError, match="exclusive"):
        load_config("quick", _toml(tmp_path, '[model]\npath = "/m"\npreset = "p"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config("quick", _toml(tmp_path, "[serving\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("quick", tmp_path / "nope.toml")


def test_the_8gpu_example_is_the_seeds_layout():
    cfg = load_config("comprehensive", REPO_ROOT / "bench" / "study_8gpu.toml")
    flags = dict(c.split(":", 1) for c in cfg.serving.configs)
    assert "--tp-size 8" in flags["tp"] and "--single-expert-mode tp" in flags["tp"]
    assert "--tp-size 4 --dp-size 2 --enable-ep-moe --ep-size 8" in flags["dp"]
    assert math.inf in cfg.serving.qps


def test_cli_bad_config_exits_2_with_the_message(tmp_path):
    p = _toml(tmp_path, "[latency]\nbatch = [1]\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "sglang_ext.study",
            "quick",
            "--config",
            str(p),
            "--out-dir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 2
    assert "unknown key 'latency.batch'" in out.stderr and "batch_sizes" in out.stderr
    assert not (tmp_path / "o").exists()
