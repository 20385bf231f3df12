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


def test_git_sha_is_the_checkouts_commit_unless_named(monkeypatch, tmp_path):
    import subprocess

    from sglang_ext.perf.records import git_sha

    monkeypatch.delenv("SGLANG_EXT_GIT_SHA", raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    run = dict(cwd=repo, check=True, capture_output=True)
    subprocess.run(["git", "init", "-q"], **run)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
         "-m", "x"], **run,
    )  # fmt: skip
    head = subprocess.run(["git", "rev-parse", "HEAD"], text=True, **run).stdout.strip()
    assert git_sha(repo) == head
    assert git_sha(tmp_path / "nothing") is None
    # a copy without history (the lent GPU's): the sha passed in names the commit
    monkeypatch.setenv("SGLANG_EXT_GIT_SHA", "6ca1ce6")
    assert git_sha(repo) == "6ca1ce6"
