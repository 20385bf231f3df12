"""Record schema round trip through JSONL."""

import dataclasses
import json

import pytest

from sglang_ext.perf.records import REQUIRED_KEYS, append_jsonl, make_record, read_jsonl
from sglang_ext.perf.serving.loadgen import LoadConfig


def test_round_trip(tmp_path):
    cfg = LoadConfig(num_prompts=3, vocab_size=10, qps=float("inf"))
    rec = make_record("serve", cfg, {"p99_ttft_ms": 1.5, "errors": {}}, env={"device": "cpu"})
    path = append_jsonl(tmp_path / "r" / "x.jsonl", rec, rec)
    back = list(read_jsonl(path))
    assert len(back) == 2
    for r in back:
        assert set(REQUIRED_KEYS) <= set(r)
        assert r["schema"] == "sglang_ext.serve/1"
        assert r["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
        assert r["metrics"] == rec["metrics"]


def test_incomplete_record_rejected(tmp_path):
    with pytest.raises(ValueError, match="make_record"):
        append_jsonl(tmp_path / "x.jsonl", {"bench": "x"})


def test_bad_line_named(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"a": 1}\nnot json\n')
    with pytest.raises(ValueError, match=":2:"):
        list(read_jsonl(p))
