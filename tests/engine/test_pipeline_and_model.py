"""Stage split, chunking, schedule, config validation and the analytic model (no processes)."""

from __future__ import annotations

import math

import pytest

from sglang_ext.engine.config import PrefillConfig
from sglang_ext.engine.perf_model import PrefillModelInputs, predict_prefill, summarize_ranks
from sglang_ext.engine.pipeline import schedule, split_chunks, split_layers


def test_split_layers_balanced_and_explicit():
    assert split_layers(4, 3) == [range(0, 2), range(2, 3), range(3, 4)]
    assert split_layers(48, 4) == [range(i * 12, (i + 1) * 12) for i in range(4)]
    assert split_layers(4, 2, [3, 1]) == [range(0, 3), range(3, 4)]
    for bad in ([2, 1], [4, 0], [1, 1, 1]):
        with pytest.raises(ValueError, match="stage-split"):
            split_layers(4, 2, bad)
    with pytest.raises(ValueError, match="only 2 layers"):
        split_layers(2, 3)


def test_split_chunks_last_short():
    assert split_chunks(24, 5) == [(0, 5), (5, 10), (10, 15), (15, 20), (20, 24)]
    assert split_chunks(3, 8) == [(0, 3)]


def test_schedule_stage_follows_previous_stage():
    K, N = 5, 3
    steps = schedule(K, N)
    assert len(steps) == K + N - 1
    when = {(s, c): t for t, step in enumerate(steps) for s, c in step}
    assert sorted(when) == [(s, c) for s in range(N) for c in range(K)]  # each pair exactly once
    for (s, c), t in when.items():
        if s > 0:
            assert when[(s - 1, c)] < t  # chunk c reaches stage s after stage s-1 has it
        if c + 1 < K and s > 0:
            assert when[(s - 1, c + 1)] == t  # stage s-1 works on c+1 meanwhile


def test_config_validation_names_the_flag():
    with pytest.raises(ValueError, match="model-path"):
        PrefillConfig(prompt_len=4)
    with pytest.raises(ValueError, match="chunk-size"):
        PrefillConfig(model_path="m", prompt_len=4, chunk_size=0)
    with pytest.raises(ValueError, match="sync"):
        PrefillConfig(model_path="m", prompt_len=4, sync="tree")
    with pytest.raises(ValueError, match="fault"):
        PrefillConfig(model_path="m", prompt_len=4, fault_rank=1)


def _inputs(**kw):
    base = dict(
        t1_compute_s=1.0,
        prompt_len=1000,
        chunk_size=100,
        n_stages=4,
        n_layers=8,
        hidden_size=64,
        kv_bytes_per_token_layer=256,
        bw_bytes_per_s=1e9,
        latency_s=1e-5,
    )
    base.update(kw)
    return PrefillModelInputs(**base)


def test_model_single_rank_is_the_baseline():
    p = predict_prefill(_inputs(n_stages=1))
    assert p["bubble_s"] == 0 and p["kv_sync_s"] == 0 and p["act_comm_s"] == 0
    assert p["prefill_plus_sync_s"] == pytest.approx(1.0) and p["efficiency"] == pytest.approx(1.0)


def test_model_matches_schedule_and_volumes():
    m = _inputs()
    p = predict_prefill(m)
    K, N = 10, 4
    t_c = 1.0 / (K * N)
    # pipeline length counted from the schedule itself
    assert p["pipeline_compute_s"] == pytest.approx(len(schedule(K, N)) * t_c)
    assert p["bubble_frac"] == pytest.approx(3 / 13)
    kv = 1000 * 8 * 256
    assert p["kv_sync_bytes_recv_per_rank"] == pytest.approx(kv * 3 / 4)
    assert p["kv_sync_s"] == pytest.approx(3e-5 + 0.75 * kv / 1e9)
    assert p["act_comm_s"] == pytest.approx(3 * (1e-5 + 100 * 64 * 4 / 1e9))
    assert p["efficiency"] < 1.0


def test_model_efficiency_tends_to_one_with_many_chunks_and_free_links():
    p = predict_prefill(_inputs(prompt_len=10**6, chunk_size=1, bw_bytes_per_s=1e30, latency_s=0))
    assert math.isclose(p["efficiency"], 1.0, rel_tol=1e-4)


def test_summarize_ranks():
    def rank(ps, pe, comp, ss, se):
        return dict(
            prefill_start_s=ps,
            prefill_end_s=pe,
            prefill_s=pe - ps,
            compute_s=comp,
            bubble_s=pe - ps - comp,
            kv_final_s=ss,
            kv_sync_start_s=ss,
            kv_sync_end_s=se,
            kv_sync_bytes_recv=10,
            decode_tok_per_s=5.0,
        )

    s = summarize_ranks([rank(0.0, 1.0, 0.5, 0.6, 1.2), rank(0.0, 1.0, 0.8, 0.9, 1.1)])
    assert s["prefill_s"] == 1.0 and s["kv_ready_s"] == pytest.approx(1.2)
    assert s["kv_sync_window_s"] == pytest.approx(0.6) and s["kv_sync_exposed_s"] == pytest.approx(
        0.2
    )
    assert s["kv_sync_hidden_frac"] == pytest.approx(1 - 0.2 / 0.6)
    assert s["bubble_frac"] == pytest.approx((0.5 + 0.2) / 2)


def test_summarize_single_rank_has_no_sync_fraction():
    r = dict(
        prefill_start_s=0.0,
        prefill_end_s=1.0,
        prefill_s=1.0,
        compute_s=1.0,
        bubble_s=0.0,
        kv_final_s=1.0,
        kv_sync_start_s=1.0,
        kv_sync_end_s=1.01,
        kv_sync_bytes_recv=0,
        decode_tok_per_s=5.0,
    )
    assert summarize_ranks([r])["kv_sync_hidden_frac"] is None
