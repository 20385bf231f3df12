"""The analytic SP+PP model against measured CPU runs: can it be trusted to project?

The model gets only what one rank measured (its whole-prompt compute and its per-chunk compute
times, from which the attention-to-linear cost ratio is fitted) and predicts the N=2 prefill
and bubble; the test runs N=2 and compares. Both chunk schedules are checked, and the
balanced schedule must not lose to fixed chunks by more than the noise.

Tolerances: on the 2-core CI machine one rank per core, one thread each, runs of a few seconds
drift 7-15% between repeats (see the repository's facts on CPU timing); the prefill prediction
must land within 30% and the bubble within 1.5x (plus 0.05 absolute for the small bubbles).
"""

from __future__ import annotations

import pytest
import torch

from sglang_ext.engine.bench import run_point
from sglang_ext.engine.perf_model import PrefillModelInputs, predict_prefill, summarize_ranks
from sglang_ext.engine.pipeline import split_chunks

pytestmark = pytest.mark.slow

P, CHUNK = 2048, 256
BASE = [
    "--dummy-preset",
    "tiny-moe-1e",
    "--device",
    "cpu",
    "--dtype",
    "float32",
    "--attention-backend",
    "sdpa",
    "--chunk-size",
    str(CHUNK),
    "--max-new-tokens",
    "2",
    "--repeats",
    "2",
    "--num-threads",
    "1",
    "--prompt-len",
    str(P),
]


def _fit_ratio(chunk_s: list[float]) -> float:
    """Least squares of t_k = a * len_k + b * pairs_k over one rank's chunks: b / a."""
    bounds = split_chunks(P, CHUNK)
    x = torch.tensor([[b - a, (b - a) * (a + b + 1) / 2] for a, b in bounds], dtype=torch.float64)
    y = torch.tensor(chunk_s, dtype=torch.float64)[:, None]
    a, b = torch.linalg.lstsq(x, y).solution[:, 0].tolist()
    assert a > 0, f"fitted linear cost {a} <= 0 from chunk times {chunk_s}"
    return max(b, 0.0) / a


def _predict(t1: float, ratio: float, schedule: str) -> dict[str, float]:
    return predict_prefill(
        PrefillModelInputs(
            t1_compute_s=t1,
            prompt_len=P,
            chunk_size=CHUNK,
            n_stages=2,
            n_layers=8,
            hidden_size=256,
            kv_bytes_per_token_layer=2 * 2 * 32 * 4,
            act_bytes=4,
            bw_bytes_per_s=2e9,
            latency_s=200e-6,
            attn_ratio=ratio,
            chunk_schedule=schedule,
        )
    )


def test_model_predicts_measured_two_rank_prefill():
    one = run_point(1, BASE)[0]
    ratio = _fit_ratio(one["chunk_compute_s"])
    # attention is visible at 2048 tokens: later chunks cost more than the first
    assert one["chunk_compute_s"][-1] > one["chunk_compute_s"][0]
    measured = {}
    for schedule in ("fixed", "balanced"):
        ranks = run_point(2, [*BASE, "--chunk-schedule", schedule, "--attn-ratio", str(ratio)])
        meas, pred = summarize_ranks(ranks), _predict(one["compute_s"], ratio, schedule)
        measured[schedule] = meas["prefill_s"]
        err = abs(pred["prefill_s"] - meas["prefill_s"]) / meas["prefill_s"]
        assert err < 0.30, (
            f"{schedule}: model {pred['prefill_s']:.3f}s vs measured {meas['prefill_s']:.3f}s "
            f"({err:.0%} off; ratio {ratio:.2e}, one rank {one['compute_s']:.3f}s)"
        )
        assert meas["bubble_frac"] <= 1.5 * pred["bubble_frac"] + 0.05, (
            f"{schedule}: measured bubble {meas['bubble_frac']:.3f} vs model "
            f"{pred['bubble_frac']:.3f}"
        )
    assert measured["balanced"] <= 1.10 * measured["fixed"], measured
