"""The package's one CLI generator and size parser (sglang_ext.cli), checked by hand-made cases."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sglang_ext.cli import SizeError, add_dataclass_args, dataclass_from_args, parse_size


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("1024", 1024),
        (7, 7),
        ("64K", 65536),  # bare units are binary, as nccl-tests reads -e 128M
        ("16M", 16 * 2**20),
        ("1G", 2**30),
        ("2GiB", 2 * 2**30),
        ("300KiB", 307200),
        ("5GB", 5 * 10**9),  # ...B units are decimal, as HF's max_shard_size="5GB"
        ("1.5MB", 1_500_000),
        ("150kb", 150_000),
    ],
)
def test_parse_size_convention(text, want):
    assert parse_size(text) == want


@pytest.mark.parametrize("bad", ["5XB", "-1", "0", "lots", "", "1.5.2M"])
def test_parse_size_rejects(bad):
    with pytest.raises(SizeError, match="size"):
        parse_size(bad)
    with pytest.raises(ValueError):  # callers that catch ValueError still do
        parse_size(bad)


@dataclass(kw_only=True, slots=True)
class _Cfg:
    src: Path
    """where from"""
    n: int = 3
    """how many"""
    rates: list[float] = field(default_factory=lambda: [1.0])
    split: list[int] | None = field(default=None, metadata={"help": "comma list", "comma": True})
    names: tuple[str, ...] = ()
    size: int = field(default=1024, metadata={"help": "bytes", "parse": parse_size})
    mode: str = field(default="tp", metadata={"help": "layout", "choices": ("tp", "dp")})
    flag: bool = False
    derived: int = field(default=0, init=False)


def _parse(argv):
    p = argparse.ArgumentParser()
    add_dataclass_args(p, _Cfg, positional=("src",))
    return p, dataclass_from_args(_Cfg, p.parse_args(argv))


def test_generator_round_trip():
    p, cfg = _parse(
        ["x", "--n", "5", "--rates", "2", "inf", "--split", "2,3", "--names", "a", "b"]
        + ["--size", "64K", "--mode", "dp", "--flag"]
    )
    assert cfg.src == Path("x") and cfg.n == 5 and cfg.rates == [2.0, float("inf")]
    assert cfg.split == [2, 3] and cfg.names == ("a", "b") and cfg.size == 65536
    assert cfg.mode == "dp" and cfg.flag is True
    helps = {a.dest: a.help for a in p._actions}
    assert helps["n"] == "how many" and helps["split"] == "comma list"  # docstring and metadata
    assert "derived" not in helps  # init=False fields are not flags


def test_generator_defaults_and_errors(capsys):
    _, cfg = _parse(["y"])
    assert (cfg.n, cfg.rates, cfg.split, cfg.names, cfg.flag) == (3, [1.0], None, (), False)
    for bad in (["y", "--mode", "ep"], ["y", "--size", "lots"], ["y", "--split", "2,x"]):
        with pytest.raises(SystemExit):
            _parse(bad)
    assert "cannot read size 'lots'" in capsys.readouterr().err
