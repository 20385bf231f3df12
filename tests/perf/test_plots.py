"""Plots and report from JSONL records: valid PNGs that matplotlib reads back."""

import matplotlib.image as mpimg
import pytest
import torch

from sglang_ext.perf.devbw import device_copy_bw
from sglang_ext.perf.profiler import ProfileConfig, profile_model
from sglang_ext.perf.records import append_jsonl, make_record, read_jsonl
from sglang_ext.perf.report import write_report
from sglang_ext.perf.toy_model import ToyDecoder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ENV = {"device": "cpu", "device_count": 0, "versions": {}}


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
            recs.append(
                make_record(
                    "bw_collectives",
                    {},
                    {
                        "op": op,
                        "world_size": 2,
                        "size_bytes": s,
                        "time_us": 10.0,
                        "algbw_gbps": s / 1e4,
                        "busbw_gbps": s / 1e4 * f,
                    },
                    env=ENV,
                )
            )
    for label in ("tp", "dp"):
        for qps in (1.0, 4.0):
            for seq in (64, 128):
                m = {
                    f"{st}_{k}_ms": float(seq) + qps
                    for k in ("ttft", "tpot", "itl", "e2e_latency")
                    for st in ("mean", "median", "p90", "p99")
                }
                m.update(
                    request_throughput=qps,
                    output_throughput=qps * 10,
                    completed=5,
                    failed_requests=0,
                    errors={},
                )
                recs.append(
                    make_record(
                        "serve", {"label": label, "qps": qps, "sequence_length": seq}, m, env=ENV
                    )
                )
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
    assert "## Serving" in text and "| tp |" in text and "busbw" in text


def test_report_of_nothing(tmp_path):
    assert "# " in write_report([], tmp_path).read_text()


def test_plot_rejects_non_records(tmp_path):
    with pytest.raises(KeyError):
        write_report([{"metrics": {}}], tmp_path)
