"""The decode-linear kernel choice (``kernels.gemv_dispatch``) on the CPU: buckets chosen from
hand-made bench records, tables written and read back, bad tables refused with the file and
the fix named, the shared table writer (``kernels.tables``) never losing the old table, and
``linear`` equal to a float64 matmul wherever it falls back.  Patch 0020's call from sglang's
own linear layer: ``tests/patching/test_patched_calls.py``; the gemv path itself runs on a
GPU (``test_gemv_dispatch_gpu.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sglang_ext.kernels import gemv_dispatch as gd
from sglang_ext.kernels import tables
from sglang_ext.kernels.gemv import GemvConfig

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
DEV = "Fake GPU 9000"


def _rec(n, k, m, kernel, us, config=None, sha="abc"):
    return {"git_sha": sha, "env": {"device": DEV, "versions": {"triton": "9.9.9"}},
            "config": {"n": n, "k": k, "m": m, "dtype": "bfloat16", "kernel": kernel,
                       "gemv_config": config},
            "metrics": {"median_us": us}}  # fmt: skip


def _records():
    return [
        # M=1: ours 8.0 vs cuBLAS 10.0 (20% faster) -> the fastest of ours
        _rec(512, 256, 1, "cublas", 10.0),
        _rec(512, 256, 1, "triton_gemv", 9.0, "n16k256w4s3d1"),
        _rec(512, 256, 1, "triton_gemv", 8.0, "n32k128w4s2d0"),
        # M=4: ours 9.8 vs 10.0 (2% faster, inside the 3% margin) -> cuBLAS
        _rec(512, 256, 4, "cublas", 10.0),
        _rec(512, 256, 4, "triton_gemv", 9.8, "n16k256w4s3d1"),
        # M=16: ours slower -> cuBLAS
        _rec(512, 256, 16, "cublas", 10.0),
        _rec(512, 256, 16, "triton_gemv", 12.0, "n16k256w4s3d1"),
    ]


def test_choose_buckets_picks_the_fastest_launch_only_past_the_margin():
    shapes = gd.choose_buckets(_records())
    assert list(shapes) == ["n=512,k=256,dtype=bfloat16"]
    got = [(b.m_max, b.config, b.us, b.cublas_us) for b in shapes["n=512,k=256,dtype=bfloat16"]]
    assert got == [(1, "n32k128w4s2d0", 8.0, 10.0), (4, "cublas", 10.0, 10.0),
                   (16, "cublas", 10.0, 10.0)]  # fmt: skip
    # a smaller margin lets the 2% win through
    assert gd.choose_buckets(_records(), margin=0.01)["n=512,k=256,dtype=bfloat16"][1].config == (
        "n16k256w4s3d1"
    )


def test_choose_buckets_needs_cublas_timed_once_per_point():
    recs = [
        r for r in _records() if not (r["config"]["m"] == 4 and r["config"]["kernel"] == "cublas")
    ]
    with pytest.raises(ValueError, match="M=4: 0 timings of cuBLAS"):
        gd.choose_buckets(recs)


@pytest.fixture
def table_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "DEFAULT_DIR", tmp_path)
    gd.load_table.cache_clear()
    yield tmp_path
    gd.load_table.cache_clear()


def _write(shapes, **kw):
    gd.write_table(gd.table_file(DEV, triton_version="9.9.9"), DEV, shapes,
                   triton_version="9.9.9", **kw)  # fmt: skip


def test_table_round_trip_and_bucket_lookup(table_dir):
    _write(gd.choose_buckets(_records()), notes={"source": "hand"})
    path = table_dir / "triton_9_9_9" / "gemv_device_name=Fake_GPU_9000.json"
    raw = json.loads(path.read_text())
    assert raw["device_name"] == DEV and raw["source"] == "hand"

    def cfg(m, n=512, k=256, dtype=torch.bfloat16):
        return gd.config_for(m, n, k, dtype, DEV, triton_version="9.9.9")

    assert cfg(1) == GemvConfig(32, 128, 4, 2, use_dot=False)
    assert cfg(2) is None and cfg(4) is None  # bucket <= 4 is cuBLAS
    assert cfg(16) is None and cfg(17) is None  # above the last bucket: cuBLAS
    assert cfg(1, n=513) is None  # unlisted shape
    assert cfg(1, dtype=torch.float16) is None  # listed for bfloat16 only
    assert gd.config_for(1, 512, 256, "bfloat16", "Other GPU", triton_version="9.9.9") is None


def test_merge_keeps_other_shapes_and_refuses_another_device(table_dir):
    _write(gd.choose_buckets(_records()))
    _write({"n=64,k=64,dtype=float16": [gd.Bucket(m_max=2, config="n16k64w4s3d1")]})
    path = gd.table_file(DEV, triton_version="9.9.9")
    assert sorted(json.loads(path.read_text())["shapes"]) == [
        "n=512,k=256,dtype=bfloat16", "n=64,k=64,dtype=float16"]  # fmt: skip
    before = path.read_text()
    with pytest.raises(ValueError, match="is the table of 'Fake GPU 9000', not 'Other'"):
        tables.merge_table(path, "Other", {"x": []}, gd._parse, triton_version="9.9.9")
    # a bucket the loader would refuse is refused before writing; the old table is intact
    with pytest.raises(ValueError, match="m_max must be increasing"):
        _write({"n=8,k=8,dtype=float16": [gd.Bucket(m_max=4, config="cublas"),
                                          gd.Bucket(m_max=2, config="cublas")]})  # fmt: skip
    assert path.read_text() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left


@pytest.mark.parametrize(
    "body, match",
    [
        ("{not json", "not JSON"),
        ('{"device_name": "x"}', "needs a 'shapes' object"),
        ('{"shapes": {"n=1,k=8,dtype=bfloat16": [{"m_max": 1, "config": "fast"}]}}',
         "bad bucket"),
        ('{"shapes": {"n=1,k=8,dtype=bfloat16": [{"m_max": 64, "config": "cublas"}]}}',
         r"increasing integers in 1\.\.32"),
        ('{"shapes": {"n=1,k=8,dtype=bfloat16": [{"m_max": 1, "cfg": "cublas"}]}}', "bad bucket"),
    ],
)  # fmt: skip
def test_bad_tables_are_refused_with_the_file_and_the_fix(table_dir, body, match):
    path = gd.table_file(DEV, triton_version="9.9.9")
    path.parent.mkdir(parents=True)
    path.write_text(body)
    with pytest.raises(ValueError, match=match) as e:
        gd.config_for(1, 1, 8, torch.bfloat16, DEV, triton_version="9.9.9")
    assert str(path) in str(e.value)
    assert "bench_gemv.py --write-table" in str(e.value) or "write it again" in str(e.value)


@pytest.mark.parametrize("m", [1, 3, 40])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_on_the_cpu_is_a_float64_matmul(m, bias):
    g = torch.Generator().manual_seed(m)
    x = torch.randn(m, 96, generator=g)
    w = torch.randn(80, 96, generator=g)
    b = torch.randn(80, generator=g) if bias else None
    want = x.double() @ w.double().T + (b.double() if bias else 0)
    torch.testing.assert_close(gd.linear(x, w, b).double(), want, rtol=1e-5, atol=1e-5)


def test_the_bench_writes_the_table_from_one_runs_records(table_dir, tmp_path, capsys):
    from sglang_ext.perf.kernel_bench.gemv import main

    src = tmp_path / "gemv.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in _records()))
    assert main(["--table-from", str(src)]) == 0
    assert gd.config_for(1, 512, 256, torch.bfloat16, DEV, triton_version="9.9.9").name == (
        "n32k128w4s2d0"
    )
    assert "<= 1: n32k128w4s2d0 (8.0 us, cuBLAS 10.0)" in capsys.readouterr().out
    src.write_text(src.read_text() + json.dumps(_rec(512, 256, 2, "cublas", 1.0, sha="x")) + "\n")
    with pytest.raises(ValueError, match="records of 2 runs"):
        main(["--table-from", str(src)])


def test_present_tables_names_the_kinds_on_disk(table_dir):
    assert tables.present_tables(DEV, triton_version="9.9.9") == []
    _write(gd.choose_buckets(_records()))
    assert tables.present_tables(DEV, triton_version="9.9.9") == ["gemv"]
    assert tables.present_tables("Other GPU", triton_version="9.9.9") == []
