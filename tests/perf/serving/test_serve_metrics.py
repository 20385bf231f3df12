"""Serving metrics on synthetic timings, against numpy computed independently here."""

import numpy as np
import pytest

bs = pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.serving.serve_metrics import serving_metrics  # noqa: E402


def _outputs(n: int = 101, out_len: int = 5):
    # TTFT i ms, ITL gaps of (i % 7 + 1) ms, so E2E = TTFT + (out_len-1) * gap
    outs = []
    for i in range(n):
        gap = (i % 7 + 1) / 1000
        ttft = (i + 1) / 1000
        outs.append(
            bs.RequestFuncOutput(
                success=True,
                ttft=ttft,
                itl=[gap] * (out_len - 1),
                latency=ttft + gap * (out_len - 1),
                output_len=out_len,
                prompt_len=10,
            )
        )
    return outs


def test_percentiles_match_numpy():
    outs = _outputs()
    m = serving_metrics([10] * len(outs), outs, duration_s=2.0)
    ttft = np.array([o.ttft for o in outs]) * 1000
    e2e = np.array([o.latency for o in outs]) * 1000
    itl = np.concatenate([o.itl for o in outs]) * 1000
    tpot = np.array([(o.latency - o.ttft) / (o.output_len - 1) for o in outs]) * 1000
    for name, ref in (("ttft", ttft), ("e2e_latency", e2e), ("itl", itl), ("tpot", tpot)):
        for stat, fn in (
            ("mean", np.mean),
            ("median", np.median),
            ("std", np.std),
            ("p90", lambda a: np.percentile(a, 90)),
            ("p99", lambda a: np.percentile(a, 99)),
            ("max", np.max),
        ):
            assert m[f"{stat}_{name}_ms"] == pytest.approx(fn(ref), rel=1e-9), f"{stat}_{name}_ms"
    # hand check: TTFT is 1..101 ms, so linear-interpolated p90 is 91 ms
    assert m["p90_ttft_ms"] == pytest.approx(91.0)
    assert m["completed"] == 101 and m["failed_requests"] == 0
    assert m["request_throughput"] == pytest.approx(101 / 2.0)
    assert m["total_output_tokens"] == 505 and m["output_throughput"] == pytest.approx(505 / 2.0)
    assert m["input_throughput"] == pytest.approx(1010 / 2.0)


def _req(ttft: float, latency: float, n: int):
    gap = (latency - ttft) / (n - 1) if n > 1 else 0.0
    return bs.RequestFuncOutput(
        success=True, ttft=ttft, latency=latency, itl=[gap] * (n - 1), output_len=n, prompt_len=10
    )


def test_goodput_matches_vllm_definition_by_hand():
    """vLLM benchmark_serving's goodput: a successful request is good when every given SLO
    holds with `<=` (TTFT, TPOT = (E2E - TTFT) / (n - 1), taken as 0 for n = 1, and E2E);
    request_goodput = good / duration.  Times are binary fractions so the boundaries are exact.
    """
    outs = [
        _req(0.0625, 0.3125, 5),  # A: TTFT 62.5, TPOT 62.5, E2E 312.5 ms -> good
        _req(0.25, 0.5, 5),  # B: TTFT 250 > 125 -> bad
        _req(0.125, 0.125, 1),  # C: TTFT 125 == SLO (good), one token: TPOT 0 -> good
        _req(0.125, 0.625, 5),  # D: TPOT 125 > 100 -> bad
        bs.RequestFuncOutput(success=False, error="Traceback...\nConnectionError: boom"),  # E
        _req(0.0625, 1.5, 17),  # F: TPOT 89.84 ok, E2E 1500 > 1000 -> bad
        _req(0.0625, 0.4375, 5),  # G: TPOT 93.75 -> good
    ]
    m = serving_metrics(
        [10] * 7, outs, duration_s=2.0, slo_ttft_ms=125, slo_tpot_ms=100, slo_e2e_ms=1000
    )
    assert m["good_requests"] == 3  # A, C, G
    assert m["request_goodput"] == pytest.approx(1.5)  # 3 / 2.0 s
    assert m["goodput_fraction"] == pytest.approx(3 / 7)  # ours: of all 7 requests sent
    assert m["slo"] == {"ttft_ms": 125, "tpot_ms": 100, "e2e_ms": 1000}
    # only the TTFT SLO: B alone misses it (E failed) -> A, C, D, F, G
    m = serving_metrics([10] * 7, outs, duration_s=2.0, slo_ttft_ms=125)
    assert m["good_requests"] == 5 and m["request_goodput"] == pytest.approx(2.5)
    # only TPOT: D misses it -> 5 good; the one-token request C counts as TPOT 0
    m = serving_metrics([10] * 7, outs, duration_s=2.0, slo_tpot_ms=100)
    assert m["good_requests"] == 5
    # no SLO given: no goodput keys at all
    assert "good_requests" not in serving_metrics([10] * 7, outs, duration_s=2.0)
    assert m["failed_requests"] == 1 and m["errors"] == {"ConnectionError: boom": 1}
    assert m["completed"] == 6


def test_all_failed_gives_zeros_not_crash():
    outs = [bs.RequestFuncOutput(success=False, error="x") for _ in range(3)]
    m = serving_metrics([1, 1, 1], outs, duration_s=1.0)
    assert m["completed"] == 0 and m["failed_requests"] == 3 and m["mean_ttft_ms"] == 0


def test_bad_input_named():
    with pytest.raises(ValueError, match="prompt lengths"):
        serving_metrics([1], [], duration_s=1.0)
