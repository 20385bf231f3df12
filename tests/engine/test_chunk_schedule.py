"""Balanced chunk schedule and the flow-shop pipeline model, on hand-computed cases."""

from __future__ import annotations

import pytest

from sglang_ext.engine.perf_model import PrefillModelInputs, fit_attn_ratio, predict_prefill
from sglang_ext.engine.pipeline import (
    chunk_cost,
    flow_shop_makespan,
    pipeline_makespan,
    split_chunks,
    split_chunks_balanced,
)


def test_chunk_cost_counts_causal_pairs():
    # chunk [2, 4): tokens at positions 2 and 3 attend to 3 and 4 keys
    assert chunk_cost(2, 4, 0.0) == 2
    assert chunk_cost(2, 4, 1.0) == 2 + 3 + 4
    assert sum(chunk_cost(a, b, 0.5) for a, b in split_chunks(10, 3)) == chunk_cost(0, 10, 0.5)


def test_balanced_split_equalises_cost_and_shrinks_later_chunks():
    assert split_chunks_balanced(12, 3, 0.0) == [(0, 4), (4, 8), (8, 12)]  # no attention: equal
    # r = 1 on 3 tokens, 3 chunks: one token each whatever the cost
    assert split_chunks_balanced(3, 3, 1.0) == [(0, 1), (1, 2), (2, 3)]
    b = split_chunks_balanced(4096, 8, 0.01)
    assert b[0][0] == 0 and b[-1][1] == 4096
    assert all(x[1] == y[0] for x, y in zip(b, b[1:], strict=False))
    lens = [e - s for s, e in b]
    assert lens == sorted(lens, reverse=True) and lens[0] > 2 * lens[-1]
    costs = [chunk_cost(s, e, 0.01) for s, e in b]
    assert max(costs) / min(costs) < 1.01
    with pytest.raises(ValueError, match="n_chunks"):
        split_chunks_balanced(4, 5, 0.0)


def test_flow_shop_makespan_hand_cases():
    assert pipeline_makespan([1.0, 1.0, 1.0], 1) == 3.0
    assert pipeline_makespan([1.0, 1.0, 1.0], 2) == 4.0  # K + N - 1 steps
    # costs 3, 1 on 2 stages: stage 1 starts chunk 0 at 3, ends 6, then chunk 1 ends 7
    assert pipeline_makespan([3.0, 1.0], 2) == 7.0
    # a long chunk last: stage 0 ends at 4; stage 1 does chunk 0 in 1..2, chunk 1 in 4..7
    assert pipeline_makespan([1.0, 3.0], 2) == 7.0
    # a hop of 0.5 between stages on the critical path
    assert pipeline_makespan([1.0, 1.0], 2, 0.5) == 3.5


def test_flow_shop_with_own_times_per_stage():
    # stage 0 takes 1 a chunk, stage 1 takes 2: stage 1 runs 1..3, 3..5 (never waits again)
    assert flow_shop_makespan([[1.0, 1.0], [2.0, 2.0]]) == 5.0
    # the slow stage first: stage 1 waits for each chunk: 2..3, 4..5
    assert flow_shop_makespan([[2.0, 2.0], [1.0, 1.0]]) == 5.0
    # hop 0.5 on every wait: 2.5..3.5, 4.5..5.5
    assert flow_shop_makespan([[2.0, 2.0], [1.0, 1.0]], 0.5) == 5.5
    with pytest.raises(ValueError, match="same chunk count"):
        flow_shop_makespan([[1.0], [1.0, 2.0]])


def test_model_on_measured_stage_times():
    m = predict_prefill(
        PrefillModelInputs(
            t1_compute_s=0.0,
            prompt_len=4,
            chunk_size=2,
            n_stages=2,
            n_layers=2,
            hidden_size=1,
            kv_bytes_per_token_layer=1,
            bw_bytes_per_s=1e30,
            latency_s=0.0,
            stage_chunk_s=[[1.0, 1.0], [2.0, 2.0]],
        )
    )
    # makespan 5; the stages are busy 2 and 4 (mean 3): mean idle 2, bubble 2/5
    assert m["pipeline_compute_s"] == 5.0 and m["bubble_s"] == 2.0 and m["bubble_frac"] == 0.4
    assert m["speedup"] == pytest.approx(6.0 / 5.0)
    with pytest.raises(ValueError, match=r"\[2 stages\]\[2 chunks\]"):
        predict_prefill(
            PrefillModelInputs(
                t1_compute_s=0.0,
                prompt_len=4,
                chunk_size=2,
                n_stages=2,
                n_layers=2,
                hidden_size=1,
                kv_bytes_per_token_layer=1,
                stage_chunk_s=[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0]],
            )
        )


def test_model_balanced_beats_fixed_when_attention_matters():
    kw = dict(
        t1_compute_s=1.0,
        prompt_len=4096,
        chunk_size=512,
        n_stages=4,
        n_layers=48,
        hidden_size=2048,
        kv_bytes_per_token_layer=2048,
    )
    flat = predict_prefill(PrefillModelInputs(**kw))
    assert flat["bubble_frac"] == pytest.approx(3 / 11)  # (N-1)/(K+N-1) with equal chunks
    fixed = predict_prefill(PrefillModelInputs(**kw, attn_ratio=1e-3))
    bal = predict_prefill(PrefillModelInputs(**kw, attn_ratio=1e-3, chunk_schedule="balanced"))
    assert bal["pipeline_compute_s"] < fixed["pipeline_compute_s"]
    assert bal["bubble_frac"] < fixed["bubble_frac"]


def test_fit_attn_ratio_recovers_known_costs():
    a, b = 2e-4, 3e-7  # T(P) = a P + b P (P + 1) / 2
    t = {p: a * p + b * p * (p + 1) / 2 for p in (512, 2048)}
    assert fit_attn_ratio(512, t[512], 2048, t[2048]) == pytest.approx(b / a)
