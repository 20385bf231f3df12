"""The measured dispatch table: lookup, bucket edges, cuBLAS fallback, the table writer.

Tables here are hand-written (or written from hand-made timings), so every expected impl is
read off the table by eye, not recomputed by the code under test.
"""

from __future__ import annotations

import json

import pytest

from sglang_ext.kernels import fused_mlp_dispatch as d
from sglang_ext.kernels.fused_mlp_dispatch import Bucket, Timing


def _write(tmp_path, monkeypatch, device="Fake GPU", shapes=None, version=None):
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP_CONFIG_DIR", str(tmp_path))
    shapes = shapes or {
        "H=2048,I=96": [
            {"m_max": 1, "impl": "cuda_onelaunch"},
            {"m_max": 4, "impl": "triton_v2"},
            {"m_max": 64, "impl": "cublas"},
            {"m_max": 256, "impl": "triton_v2"},
        ],
    }
    p = d.dispatch_path(device, triton_version=version)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"device_name": device, "shapes": shapes}))
    return p


def test_path_is_keyed_by_triton_version_and_device(tmp_path):
    p = d.dispatch_path("NVIDIA H200", tmp_path, triton_version="3.6.0")
    assert p == tmp_path / "triton_3_6_0" / "dispatch_device_name=NVIDIA_H200.json"


def test_lookup_and_bucket_edges(tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch)
    expected = {
        1: "cuda_onelaunch",
        2: "triton_v2",
        4: "triton_v2",
        5: "cublas",
        64: "cublas",
        65: "triton_v2",
        256: "triton_v2",
        257: "cublas",
        16384: "cublas",
    }  # above the last bucket: cuBLAS
    got = {m: d.choose_impl(m, 2048, 96, "Fake GPU") for m in expected}
    assert got == expected


def test_unknown_device_shape_or_version_is_cublas(tmp_path, monkeypatch):
    _write(tmp_path, monkeypatch)
    assert d.choose_impl(1, 2048, 96, "Other GPU") == "cublas"
    assert d.choose_impl(1, 4096, 192, "Fake GPU") == "cublas"
    assert d.choose_impl(1, 2048, 768, "Fake GPU") == "cublas"
    _write(tmp_path / "v", monkeypatch, device="Old GPU", version="0.0.1")
    assert d.choose_impl(1, 2048, 96, "Old GPU") == "cublas"  # table of another Triton


@pytest.mark.parametrize(
    "shapes, match",
    [
        ({"H=1,I=8": [{"m_max": 4, "impl": "magic"}]}, "unknown impl"),
        (
            {"H=1,I=8": [{"m_max": 4, "impl": "cublas"}, {"m_max": 2, "impl": "cublas"}]},
            "increasing",
        ),
        ({"H=1,I=8": [{"m_max": 4}]}, "bad bucket"),
    ],
)
def test_bad_table_names_the_file_and_problem(tmp_path, monkeypatch, shapes, match):
    p = _write(tmp_path, monkeypatch, device=f"Bad {match}", shapes=shapes)
    with pytest.raises(ValueError, match=match) as e:
        d.choose_impl(1, 1, 8, f"Bad {match}")
    assert str(p) in str(e.value)


def _t(*us):
    return Timing(medians_us=tuple(us))


def test_choose_buckets_needs_a_win_above_the_spread():
    timings = {
        1: {
            "cublas": _t(12.0, 12.1, 11.9),
            "cuda_onelaunch": _t(7.0, 7.1, 7.0),
            "triton_v2": _t(10.0, 10.1, 10.0),
        },  # clear win: cuda
        2: {"cublas": _t(12.0, 12.2, 11.8), "triton_v2": _t(11.0, 12.5, 10.1)},  # noisy: no
        4: {"cublas": _t(12.0, 12.0, 12.0), "triton_v2": _t(11.9, 11.9, 11.9)},  # < 2%: no
        8: {"cublas": _t(12.0, 12.0, 12.0), "triton_v2": _t(11.0, 11.0, 11.0)},  # 8%: yes
        16: {"cublas": _t(10.0, 10.0, 10.0), "cuda_onelaunch": _t(13.0, 13.0, 13.0)},
    }
    got = [(b.m_max, b.impl) for b in d.choose_buckets(timings)]
    assert got == [
        (1, "cuda_onelaunch"),
        (2, "cublas"),
        (4, "cublas"),
        (8, "triton_v2"),
        (16, "cublas"),
    ]
    b1 = d.choose_buckets(timings)[0]
    assert (b1.us, b1.cublas_us) == (7.0, 12.0)
    with pytest.raises(ValueError, match="no cublas timing"):
        d.choose_buckets({1: {"triton_v2": _t(1.0)}})
    with pytest.raises(ValueError, match="unknown impl"):
        d.choose_buckets({1: {"cublas": _t(1.0), "magic": _t(0.5)}})


def test_write_table_merges_shapes_and_loads_back(tmp_path, monkeypatch):
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP_CONFIG_DIR", str(tmp_path))
    p = d.dispatch_path("Fake GPU")
    d.write_table(
        p,
        "Fake GPU",
        2048,
        96,
        [Bucket(m_max=1, impl="cuda_onelaunch", us=7.0), Bucket(m_max=64, impl="triton_v2")],
    )
    d.write_table(p, "Fake GPU", 4096, 192, [Bucket(m_max=16, impl="triton_v2")])
    d.write_table(p, "Fake GPU", 2048, 96, [Bucket(m_max=32, impl="cublas")])  # re-measured
    raw = json.loads(p.read_text())
    assert raw["device_name"] == "Fake GPU" and list(raw["shapes"]) == [
        "H=2048,I=96",
        "H=4096,I=192",
    ]
    assert raw["shapes"]["H=2048,I=96"] == [{"m_max": 32, "impl": "cublas"}]
    assert d.choose_impl(8, 4096, 192, "Fake GPU") == "triton_v2"
    assert d.choose_impl(1, 2048, 96, "Fake GPU") == "cublas"
    with pytest.raises(ValueError, match="table of 'Fake GPU'"):
        d.write_table(p, "Other GPU", 2048, 96, [Bucket(m_max=1, impl="cublas")])
    with pytest.raises(ValueError, match="unknown impl"):
        d.write_table(p, "Fake GPU", 2048, 96, [Bucket(m_max=1, impl="magic")])
    with pytest.raises(ValueError, match="no buckets"):
        d.write_table(p, "Fake GPU", 2048, 96, [])


def test_write_table_can_keep_the_buckets_of_unmeasured_m(tmp_path, monkeypatch):
    """A re-measurement of M = 1 and 8 replaces those buckets and keeps 64's."""
    monkeypatch.setenv("SGLANG_EXT_FUSED_MLP_CONFIG_DIR", str(tmp_path))
    p = d.dispatch_path("Fake GPU")
    d.write_table(p, "Fake GPU", 4096, 1536, [Bucket(m_max=1, impl="cuda_onelaunch"),
                                              Bucket(m_max=8, impl="cublas"),
                                              Bucket(m_max=64, impl="triton_v2")])  # fmt: skip
    d.write_table(p, "Fake GPU", 4096, 1536, [Bucket(m_max=1, impl="cublas", us=9.0),
                                              Bucket(m_max=8, impl="triton_v2")],
                  keep_unmeasured=True)  # fmt: skip
    assert json.loads(p.read_text())["shapes"]["H=4096,I=1536"] == [
        {"m_max": 1, "impl": "cublas", "us": 9.0},
        {"m_max": 8, "impl": "triton_v2"},
        {"m_max": 64, "impl": "triton_v2"},
    ]
    assert [d.choose_impl(m, 4096, 1536, "Fake GPU") for m in (1, 2, 40, 65)] == [
        "cublas", "triton_v2", "triton_v2", "cublas"]  # fmt: skip


def test_shipped_tables_parse():
    """Every dispatch, decode-attention and gemv table in the package loads (a malformed one
    would break serving)."""
    from sglang_ext.kernels import decode_attention_launch as dal
    from sglang_ext.kernels import gemv_dispatch as gd
    from sglang_ext.kernels.tables import DEFAULT_DIR

    tables = list(DEFAULT_DIR.glob("triton_*/dispatch_device_name=*.json"))
    assert tables
    for p in tables:
        assert d.load_table(str(p)), p
    attention = list(DEFAULT_DIR.glob("triton_*/decode_attention_device_name=*.json"))
    assert attention
    for p in attention:
        assert dal.load_table(str(p)), p
    gemv = list(DEFAULT_DIR.glob("triton_*/gemv_device_name=*.json"))
    assert gemv
    for p in gemv:
        assert gd.load_table(str(p)), p
