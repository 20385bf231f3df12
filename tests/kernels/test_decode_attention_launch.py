"""The stage-1 launch table of sglang's decode attention (patch 0019): buckets, fall-backs,
bad files, and the table written from bench records (hand-computed cases).  That the patched
sglang launches what the table says, and that those launches compute attention right, is
checked under the Triton interpreter in tests/perf/kernel_bench."""

from __future__ import annotations

import json

import pytest
import torch

from sglang_ext.kernels import decode_attention_launch as dal
from sglang_ext.kernels.decode_attention_launch import SGLANG_STAGE1, Bucket, Stage1Config
from sglang_ext.presets import preset_config

DEV = "Fake GPU"


def _write(tmp_path, shapes, device=DEV):
    path = dal.table_file(device, tmp_path, "9.9.9")
    dal.write_table(path, device, shapes, triton_version="9.9.9")
    return path


def test_buckets_cover_batch_ranges_and_fall_back_to_sglangs_launch(tmp_path):
    a, b = Stage1Config(128, 8, 2), Stage1Config(64, 4, 3)
    _write(tmp_path, {"group=8,head_dim=128": [Bucket(batch_max=1, stage1=a),
                                                Bucket(batch_max=32, stage1=b)]})  # fmt: skip

    def at(batch, group=8, dim=128, device=DEV):
        return dal.launch_for(batch, group, dim, device, tmp_path, "9.9.9")

    assert [at(n) for n in (1, 2, 32)] == [a, b, b]
    assert at(33) == SGLANG_STAGE1  # above the last measured batch: no guess
    assert at(1, group=16) == SGLANG_STAGE1  # another head layout
    assert at(1, dim=64) == SGLANG_STAGE1
    assert at(1, device="Other GPU") == SGLANG_STAGE1  # no table for that device
    assert dal.launch_for(1, 8, 128, DEV, tmp_path, "1.0.0") == SGLANG_STAGE1  # other Triton


def test_off_cuda_the_patch_gets_sglangs_launch():
    assert dal.stage1_config(1, 8, 128, torch.device("cpu")) == (32, 4, 2)


@pytest.mark.parametrize(
    "rows, what",
    [
        ([{"batch_max": 8, "block_n": 32, "num_warps": 4, "num_stages": 2},
          {"batch_max": 1, "block_n": 32, "num_warps": 4, "num_stages": 2}], "increasing"),
        ([{"batch_max": 1, "block_n": 48, "num_warps": 4, "num_stages": 2}], "power of two"),
        ([{"batch_max": 1, "num_warps": 4, "num_stages": 2}], "block_n"),
    ],
)  # fmt: skip
def test_a_bad_table_is_refused_with_the_file_and_the_fix(tmp_path, rows, what):
    path = dal.table_file(DEV, tmp_path, "9.9.9")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"shapes": {"group=8,head_dim=128": rows}}))
    dal.load_table.cache_clear()
    with pytest.raises(ValueError, match=what) as e:
        dal.launch_for(1, 8, 128, DEV, tmp_path, "9.9.9")
    assert str(path) in str(e.value) and "--write-table" in str(e.value)


def test_a_table_of_another_device_is_not_overwritten(tmp_path):
    path = _write(tmp_path, {"group=8,head_dim=128": [Bucket(batch_max=1, stage1=SGLANG_STAGE1)]})
    with pytest.raises(ValueError, match="the table of 'Fake GPU'"):
        dal.write_table(path, "Other GPU", {"g": [Bucket(batch_max=1, stage1=SGLANG_STAGE1)]})


def _rec(batch, stage1, splits, us, rule=8, heads=32):
    return {
        "config": {"heads": heads, "kv_heads": 4, "head_dim": 128, "batch_size": batch,
                   "stage1": stage1, "kv_splits": splits, "sglang_rule_splits": rule,
                   "is_sglang_default": stage1 == "n32w4s2" and splits == rule},
        "metrics": {"median_us": us},
    }  # fmt: skip


def test_buckets_from_records_take_the_fastest_launch_at_sglangs_split_count():
    records = [
        # batch 1: n128w8s2 is 30% faster than sglang's 10 us; 16 splits would be faster
        # still, but the split count is sglang's rule, not the table's
        _rec(1, "n32w4s2", 8, 10.0), _rec(1, "n128w8s2", 8, 7.0), _rec(1, "n64w4s3", 16, 5.0),
        # batch 32: the best other launch is 4% faster, within the 5% margin: sglang's
        _rec(32, "n32w4s2", 4, 20.0, rule=4), _rec(32, "n32w4s3", 4, 19.2, rule=4),
        # the 235B head layout (64 heads over 4) is its own shape
        _rec(1, "n32w4s2", 8, 12.0, heads=64), _rec(1, "n64w4s3", 8, 6.0, heads=64),
    ]  # fmt: skip
    got = dal.choose_buckets(records)
    assert got == {
        "group=8,head_dim=128": [
            Bucket(batch_max=1, stage1=Stage1Config(128, 8, 2), us=7.0, sglang_us=10.0),
            Bucket(batch_max=32, stage1=SGLANG_STAGE1, us=20.0, sglang_us=20.0),
        ],
        "group=16,head_dim=128": [
            Bucket(batch_max=1, stage1=Stage1Config(64, 4, 3), us=6.0, sglang_us=12.0)
        ],
    }
    with pytest.raises(ValueError, match="sglang's launch included"):
        dal.choose_buckets([_rec(1, "n64w4s3", 8, 5.0)])


@pytest.mark.parametrize("preset", ["qwen3-30b-a3b-1e", "qwen3-235b-a22b-1e"])
def test_the_h200_table_has_a_non_default_launch_for_each_presets_attention(preset):
    c = preset_config(preset)
    group = c["num_attention_heads"] // c["num_key_value_heads"]
    got = {dal.launch_for(b, group, c["head_dim"], "NVIDIA H200", triton_version="3.6.0")
           for b in (1, 8, 32, 128)}  # fmt: skip
    assert SGLANG_STAGE1 not in got, got
