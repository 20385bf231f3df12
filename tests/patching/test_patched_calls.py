"""The call sites of patches 0020-0022 (and the decode step's calls that
``profile.host_calls`` times) in the patched sglang, on the CPU (one child process,
``_patched_calls_worker.py``): each against pristine behaviour or a hand-computed answer."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


@functools.cache
def _results() -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    env.pop("SGLANG_EXT_CONFIG", None)
    proc = subprocess.run([sys.executable, str(HERE / "_patched_calls_worker.py")], env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"worker failed:\n{proc.stderr[-4000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_0020_unquantized_linear_goes_through_the_dispatch():
    assert _results()["linear"] == {"calls": 2, "err_ok": True, "bias_ok": True}


@pytest.mark.parametrize(
    "case, expected",
    [("plain", True), ("subclass", False), ("other backend", False), ("verify mode", False),
     ("eagle", False), ("sliding window", False), ("dp attention", False),
     ("sp layernorm", False), ("pp", False), ("two-batch overlap", False),
     ("encoder-decoder", False), ("plain, switched off", False)],
)  # fmt: skip
def test_0021_metadata_in_graph_only_for_plain_triton_decode(case, expected):
    assert _results()["in_graph"][case] is expected


def test_0021_replay_prepare_skips_the_host_metadata_only_when_the_graph_has_it():
    host, graph = _results()["replay_prepare"]["host"], _results()["replay_prepare"]["graph"]
    assert host["metadata_calls"] == [4]  # sglang's call, at the padded size
    assert graph["metadata_calls"] == []
    for r in (host, graph):  # 3 rows into the batch-4 graph: the padded row gets length 1
        assert r["bs"] == 4
        assert r["seq_lens"] == [5, 6, 7, 1]
        assert r["input_ids"][:3] == [7, 8, 9] and r["out_cache_loc"] == [10, 11, 12, 0]


def test_decode_host_calls_exist_and_count_the_calls_made():
    got = _results()["host_calls"]
    assert got["unresolved"] == {}
    # one replay_prepare, which calls patch 0025's copy_graph_inputs once (False on the CPU,
    # then sglang's own copies); nothing else of the step ran
    assert got["calls"] == {
        "forward.replay.replay_prepare": 1,
        "forward.replay.replay_prepare.copy_graph_inputs": 1,
    }
    assert got["restored"] is True


def test_0022_decode_positions_are_eager_and_exact():
    pos = _results()["positions"]
    assert pos["compiled"] is False  # pristine: torch.compile's wrapper (dynamo's attribute)
    assert pos["values"] == [0, 0, 4, 129] and pos["dtype"] == "torch.int64"
