"""Plots and report from JSONL records: valid PNGs, the saturation point on the throughput
plot with sane axes, confidence intervals and verdicts checked against hand-computed cases."""

import math

import matplotlib.image as mpimg
import pytest
import torch

from sglang_ext.perf.comm.devbw import device_copy_bw
from sglang_ext.perf.profile.profiler import ProfileConfig, profile_model
from sglang_ext.perf.records import append_jsonl, make_record, read_jsonl
from sglang_ext.perf.report.markdown import serving_verdicts, write_report
from sglang_ext.perf.report.plots import (
    latency_throughput_figure,
    load_positions,
    throughput_figure,
)
from sglang_ext.perf.stats import compare_spread, spread
from tests._support.toy_model import ToyDecoder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENV = {"device": "cpu", "device_count": 0, "versions": {}}
LAT = ("ttft", "tpot", "itl", "e2e_latency")


def _serve(label, qps, rep, req_tput, out_tput, lat_ms, seq=64):
    m = {f"{st}_{k}_ms": lat_ms for k in LAT for st in ("mean", "median", "p90", "p99")}
    m.update(
        request_throughput=req_tput,
        output_throughput=out_tput,
        completed=5,
        num_requests=5,
        failed_requests=0,
        errors={},
        gpu_memory=[],
    )
    cfg = {"label": label, "qps": qps, "repeat": rep, "sequence_length": seq}
    return make_record("serve", cfg, m, env=ENV)


def _records(tmp_path):
    recs = []
    model = ToyDecoder(vocab=50, hidden=16, ffn=32, heads=2, layers=2).eval()
    ids = torch.randint(0, 50, (1, 8))

    def step():
        with torch.no_grad():
            model(ids)

    res = profile_model(
        model, step, ProfileConfig(name="toy", out_dir=str(tmp_path), iters=1, warmup=0)
    )
    recs.append(make_record("profile", {"name": "toy"}, res, env=ENV))
    for s in (1024, 4096):
        recs.append(
            make_record("bw_device", {}, device_copy_bw(s, torch.device("cpu"), iters=2), env=ENV)
        )
        for op, f in (("all_reduce", 1.0), ("all_gather", 0.5)):
            m = {"op": op, "world_size": 2, "size_bytes": s, "time_us": 10.0}
            m.update(algbw_gbps=s / 1e4, busbw_gbps=s / 1e4 * f)
            recs.append(make_record("bw_collectives", {}, m, env=ENV))
    for label in ("tp", "dp"):
        for qps in (1.0, 4.0):
            for seq in (64, 128):
                recs.append(_serve(label, qps, 0, qps, qps * 10, float(seq) + qps, seq))
    return recs


def test_plots_and_report(tmp_path):
    path = append_jsonl(tmp_path / "all.jsonl", *_records(tmp_path))
    report = write_report(read_jsonl(path), tmp_path / "out")
    pngs = sorted((tmp_path / "out").glob("*.png"))
    names = {p.name for p in pngs}
    assert names == {
        "toy_layer_heatmap_rank0.png",
        "toy_op_time_rank0.png",
        "compute_vs_comm.png",
        "bw_collectives_vs_size.png",
        "bw_device_vs_size.png",
        "latency_vs_seqlen.png",
        "throughput_vs_load.png",
        "latency_vs_throughput.png",
        "serving_comparison.png",
    }
    for p in pngs:
        assert p.read_bytes()[:8] == PNG_SIGNATURE, p
        img = mpimg.imread(p)
        assert img.ndim == 3 and img.shape[0] > 50 and img.shape[1] > 50, p
        assert img.std() > 0, f"{p} is blank"
    text = report.read_text()
    for p in pngs:
        assert f"]({p.name})" in text
    assert "## Serving" in text and "busbw" in text


def test_spread_against_hand_computed_t_interval():
    s = spread([1.0, 2.0, 3.0])
    # mean 2, sample std 1, t(0.975, df=2) = 4.302652729911275 (Student-t table)
    assert s.n == 3 and s.mean == 2.0 and s.std == pytest.approx(1.0)
    assert s.ci_half == pytest.approx(4.302652729911275 / math.sqrt(3), rel=1e-9)
    one = spread([5.0])
    assert one.mean == 5.0 and math.isnan(one.ci_half)
    assert compare_spread(one, s) is None
    assert compare_spread(spread([10.0, 10.1, 9.9]), spread([1.0, 1.1, 0.9])) is True
    assert compare_spread(spread([1.0, 3.0]), spread([2.0, 2.5])) is False
    with pytest.raises(ValueError, match="finite"):
        spread([1.0, math.inf])


def _two_configs(tp_out, dp_out):
    recs = []
    for rep, (a, b) in enumerate(zip(dp_out, tp_out, strict=True)):
        for qps in (2.0, math.inf):
            f = 1.0 if math.isinf(qps) else 0.5
            recs.append(_serve("dp", qps, rep, a / 10 * f, a * f, 100.0 + rep))
            recs.append(_serve("tp", qps, rep, b / 10 * f, b * f, 50.0 + rep))
    return recs


def test_verdicts_ratio_and_spread():
    recs = _two_configs(tp_out=[100.0, 102.0, 98.0], dp_out=[50.0, 51.0, 49.0])
    v = {(r["qps"], r["metric"]): r for r in serving_verdicts(recs)}
    sat = v[(math.inf, "output_throughput")]
    assert sat["baseline"] == "dp" and sat["label"] == "tp"
    assert sat["ratio"] == pytest.approx(2.0) and sat["beyond_spread"] is True
    assert sat["better"] == "tp"
    ttft = v[(math.inf, "median_ttft_ms")]  # tp 51 vs dp 101 ms: lower is better
    assert ttft["ratio"] == pytest.approx(51 / 101) and ttft["better"] == "tp"
    # overlapping repeats: no verdict beyond the spread
    close = serving_verdicts(_two_configs(tp_out=[100.0, 90.0, 110.0], dp_out=[95.0, 105.0, 99.0]))
    sat = next(r for r in close if r["qps"] == math.inf and r["metric"] == "output_throughput")
    assert sat["beyond_spread"] is False


def test_report_verdict_lines(tmp_path):
    recs = _two_configs(tp_out=[100.0, 102.0, 98.0], dp_out=[50.0, 51.0, 49.0])
    text = write_report(recs, tmp_path).read_text()
    assert "**output throughput** at inf (saturation): tp / dp = 2 (100 vs 50 tok/s" in text
    assert "**tp is better**, beyond the spread" in text
    assert "No GPU on this host" in text


def test_throughput_plot_draws_saturation_with_sane_axes():
    recs = _two_configs(tp_out=[100.0, 102.0, 98.0], dp_out=[50.0, 51.0, 49.0])
    fig = throughput_figure(recs)
    ax = fig.axes[1]  # output throughput vs offered load
    xs, x_inf = load_positions([2.0, math.inf])
    assert xs == [2.0, 3.0] and x_inf == 3.0
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["2", "inf\n(saturation)"]
    tp_line = next(
        ln
        for ln in ax.get_lines()
        if list(ln.get_xdata()) == [2.0, 3.0] and max(ln.get_ydata()) > 90
    )
    assert list(tp_line.get_ydata()) == pytest.approx([50.0, 100.0])  # inf point is drawn
    lo, hi = ax.get_ylim()
    assert lo == 0 and hi >= 100  # from zero, every point in view
    lat = latency_throughput_figure(recs)
    assert [a.get_ylabel() for a in lat.axes] == ["TTFT (ms)", "TPOT (ms)", "E2E latency (ms)"]


def test_report_of_nothing(tmp_path):
    assert "# " in write_report([], tmp_path).read_text()


def test_plot_rejects_non_records(tmp_path):
    with pytest.raises(KeyError):
        write_report([{"metrics": {}}], tmp_path)
