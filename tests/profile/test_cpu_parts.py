"""A CPU step's labelled parts, from a hand-made Kineto trace with nested labels.

A label nested in another counts once, in the outer one; the expected numbers are
worked out by hand below, not by the code under test.
"""

from __future__ import annotations

import json

import pytest

from sglang_ext.profile.analysis import rank_summary


def _ann(name, ts, dur):
    return {"ph": "X", "cat": "user_annotation", "name": name, "ts": ts, "dur": dur,
            "pid": 7, "tid": 1, "args": {}}  # fmt: skip


# one decode step of 1000 us:
#   [10, 60]    op::batch_prep, holding op::dp_prepare [20, 50] (holding comm [25, 45])
#   [100, 400]  layer::L0: op::L0.attention [120, 200] holding op::L0.rotary [130, 140];
#               op::embed [110, 115] inside the layer; op::L0.expert_mlp [250, 350]
#   [400, 700]  layer::L1: op::L1.expert_mlp [450, 500]
#   [720, 820]  op::logits; [830, 850] op::sample
# counted once each: layers 300 + 300; ops attention 80 (rotary inside it), expert_mlp
# 100 and 50; outside batch_prep 50 (dp_prepare inside it), logits 100, sample 20 (embed
# inside L0); other = 1000 - 600 - 170 = 230. Summing every label would give other 195.
STEP = [
    _ann("step::decode", 0, 1000),
    _ann("op::batch_prep", 10, 50),
    _ann("op::dp_prepare", 20, 30),
    _ann("comm::all_gather", 25, 20),
    _ann("layer::L0", 100, 300),
    _ann("op::embed", 110, 5),
    _ann("op::L0.attention", 120, 80),
    _ann("op::L0.rotary", 130, 10),
    _ann("op::L0.expert_mlp", 250, 100),
    _ann("layer::L1", 400, 300),
    _ann("op::L1.expert_mlp", 450, 50),
    _ann("op::logits", 720, 100),
    _ann("op::sample", 830, 20),
    _ann("op::sample", 2000, 20),  # outside the step: not counted
]


def test_nested_labels_count_once(tmp_path):
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps({"traceEvents": STEP}))
    s = rank_summary(trace, n_layers=2, phase="decode", gpu=False)
    assert s["step_us"] == pytest.approx(1000)
    assert s["per_layer_us"] == pytest.approx([300, 300])
    assert s["ops_us"]["attention"] == pytest.approx([80, 0])
    assert s["ops_us"]["expert_mlp"] == pytest.approx([100, 50])
    assert sum(s["ops_us"].get("rotary", [0, 0])) == 0
    assert s["outside_us"] == pytest.approx(
        {"batch_prep": 50, "logits": 100, "sample": 20, "other": 230}
    )
