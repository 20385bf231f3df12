"""Serving metrics on synthetic timings, against numpy computed independently here."""

import numpy as np
import pytest

bs = pytest.importorskip("sglang.bench_serving")

from sglang_ext.perf.serve_metrics import serving_metrics  # noqa: E402


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


def test_goodput_and_failures():
    outs = _outputs(n=10)
    outs.append(bs.RequestFuncOutput(success=False, error="Traceback...\nConnectionError: boom"))
    m = serving_metrics([10] * 11, outs, duration_s=1.0, slo_ttft_ms=5.0, slo_tpot_ms=4.0)
    good = sum(
        1
        for o in outs
        if o.success
        and o.ttft * 1000 <= 5.0
        and (o.latency - o.ttft) / (o.output_len - 1) * 1000 <= 4.0
    )
    assert m["good_requests"] == good == 4  # ttft 1..5 ms with gaps 1..5 ms: i=0..3
    assert m["request_goodput"] == pytest.approx(good / 1.0)
    assert m["failed_requests"] == 1 and m["errors"] == {"ConnectionError: boom": 1}
    assert m["completed"] == 10


def test_all_failed_gives_zeros_not_crash():
    outs = [bs.RequestFuncOutput(success=False, error="x") for _ in range(3)]
    m = serving_metrics([1, 1, 1], outs, duration_s=1.0)
    assert m["completed"] == 0 and m["failed_requests"] == 3 and m["mean_ttft_ms"] == 0


def test_bad_input_named():
    with pytest.raises(ValueError, match="prompt lengths"):
        serving_metrics([1], [], duration_s=1.0)
