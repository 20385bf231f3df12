"""``ratio_to_sglang`` on hand-made records: matched by prompt length and dtype (and preset,
layers, device, seed), other sglang configs and N>1 records left alone, mismatches refused."""

from __future__ import annotations

import pytest

from sglang_ext.engine.sglang_ratio import attach_ratio_to_sglang


def _cfg(**kw):
    base = dict(
        dummy_preset="qwen3-30b-a3b-1e", num_layers=None, device="cuda", dtype="bfloat16", seed=0
    )
    return {**base, **kw}


def _sgl(plen, prefill_s, *, name="tp1", **kw):
    cfg = _cfg(prompt_len=plen, sglang_config=name, command=["python", "-m", name, str(plen)])
    cfg.update(kw)
    return {"bench": "sp_pp_sglang", "config": cfg, "metrics": {"prefill_s": prefill_s}}


def _eng(plen, prefill_s, *, nprocs=1, **kw):
    cfg = _cfg(prompt_len=plen, nprocs=nprocs)
    cfg.update(kw)
    return {"bench": "sp_pp", "config": cfg, "metrics": {"measured_prefill_s": prefill_s}}


def test_ratio_matches_prompt_length_and_dtype():
    sgl = [
        _sgl(16384, 0.5),
        _sgl(4096, 0.08),
        _sgl(4096, 0.2, dtype="float32"),  # same prompt, other dtype
        _sgl(4096, 0.01, name="tp2"),  # same key, another sglang config
        _sgl(4096, 0.3, seed=1),  # other weights/prompt
    ]
    eng = [
        _eng(4096, 0.1),
        _eng(16384, 0.375),
        _eng(4096, 0.05, nprocs=2),
        _eng(4096, 0.3, dtype="float32"),
    ]
    got = attach_ratio_to_sglang(eng, sgl)
    assert got == [eng[0], eng[1], eng[3]]
    assert eng[0]["metrics"]["ratio_to_sglang"] == pytest.approx(1.25)
    assert eng[0]["metrics"]["sglang_prefill_s"] == 0.08
    assert eng[0]["metrics"]["sglang_command"] == ["python", "-m", "tp1", "4096"]
    assert eng[1]["metrics"]["ratio_to_sglang"] == pytest.approx(0.75)
    assert eng[3]["metrics"]["ratio_to_sglang"] == pytest.approx(1.5)
    assert "ratio_to_sglang" not in eng[2]["metrics"]  # N=2 has no TP-1 counterpart


@pytest.mark.parametrize(
    "engine_kw, names",
    [
        (dict(prompt_len=2048), "prompt_len=2048"),
        (dict(dtype="float16"), "dtype=float16"),
        (dict(num_layers=4), "num_layers=4"),
    ],
)
def test_missing_baseline_is_refused_by_name(engine_kw, names):
    eng = _eng(4096, 0.1)
    eng["config"].update(engine_kw)
    with pytest.raises(ValueError, match=names) as e:
        attach_ratio_to_sglang([eng], [_sgl(4096, 0.08), _sgl(4096, 0.2, name="pp2")])
    assert "--sglang tp1" in str(e.value)
    assert "ratio_to_sglang" not in eng["metrics"]


def test_ambiguous_or_wrong_baselines_are_refused():
    with pytest.raises(ValueError, match="two sglang tp1 records"):
        attach_ratio_to_sglang([_eng(4096, 0.1)], [_sgl(4096, 0.08), _sgl(4096, 0.09)])
    with pytest.raises(ValueError, match="as an sglang baseline"):
        attach_ratio_to_sglang([_eng(4096, 0.1)], [_eng(4096, 0.08)])
    with pytest.raises(ValueError, match="not positive"):
        attach_ratio_to_sglang([_eng(4096, 0.1)], [_sgl(4096, 0.0)])
