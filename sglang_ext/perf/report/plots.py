"""Plots from result records only (matplotlib, Agg backend, PNG).

Each function takes records as read from JSONL and writes one PNG.  :func:`make_plots`
picks the plots that a set of records supports, by their ``bench`` field.
"""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sglang_ext.perf.stats import serving_points  # noqa: E402

__all__ = [
    "plot_layer_heatmap",
    "plot_op_distribution",
    "plot_compute_comm",
    "plot_bandwidth",
    "plot_latency_vs_seqlen",
    "plot_serving_comparison",
    "plot_throughput_vs_load",
    "plot_latency_vs_throughput",
    "throughput_figure",
    "latency_throughput_figure",
    "load_positions",
    "make_plots",
    "series_label",
]

logger = logging.getLogger(__name__)
Rec = dict[str, Any]


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def series_label(rec: Rec) -> str:
    """The configuration a serving record belongs to (``config.label`` if set)."""
    c = rec.get("config", {})
    return str(c.get("label") or c.get("base_url") or rec.get("bench"))


def plot_layer_heatmap(rec: Rec, path: Path) -> Path:
    """Decoder layer x child module (attention, MLP, norms): mean time per call (us)."""
    ops = rec["metrics"]["ops"]
    layers = list(rec["metrics"]["layers"]) or sorted({k.rsplit(".", 1)[0] for k in ops})
    kinds = sorted({k.rsplit(".", 1)[1] for k in ops})
    grid = np.array(
        [[ops.get(f"{layer}.{k}", {}).get("mean_us", np.nan) for k in kinds] for layer in layers]
    )
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(kinds), max(3.0, 1.2 + 0.35 * len(layers))))
    im = ax.imshow(grid, aspect="auto", cmap="viridis")
    ax.set_xticks(range(len(kinds)), kinds, rotation=30, ha="right")
    ax.set_yticks(range(len(layers)), [re.sub(r".*layers\.", "layer ", n) for n in layers])
    fig.colorbar(im, ax=ax, label="mean time per call (us)")
    ax.set_title(f"per-layer op time, rank {rec['metrics'].get('rank', 0)}")
    return _save(fig, path)


def plot_op_distribution(rec: Rec, path: Path, top: int = 15) -> Path:
    items = list(rec["metrics"]["op_time_us"].items())[:top]
    fig, ax = plt.subplots(figsize=(8, 0.5 + 0.3 * len(items)))
    ax.barh([n[:60] for n, _ in items][::-1], [v / 1e3 for _, v in items][::-1])
    ax.set_xlabel("total time (ms)")
    ax.set_title(f"top ops ({rec['metrics'].get('device', '?')} time)")
    return _save(fig, path)


def plot_compute_comm(recs: list[Rec], path: Path) -> Path:
    """Per rank: compute, exposed communication, overlapped communication and idle time."""
    recs = sorted(recs, key=lambda r: r["metrics"].get("rank", 0))
    names = [f"rank {r['metrics'].get('rank', 0)}" for r in recs]
    b = [r["metrics"]["breakdown"] for r in recs]
    parts = [
        ("compute", [x["compute_us"] - x["overlap_us"] for x in b]),
        ("comm overlapped", [x["overlap_us"] for x in b]),
        ("comm exposed", [x["exposed_comm_us"] for x in b]),
        ("idle", [x["idle_us"] for x in b]),
    ]
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.5 * len(recs)))
    left = np.zeros(len(recs))
    for label, vals in parts:
        v = np.array(vals) / 1e3
        ax.barh(names, v, left=left, label=label)
        left += v
    ax.set_xlabel("time over the profiled window (ms)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("compute vs communication")
    return _save(fig, path)


def plot_bandwidth(recs: list[Rec], path: Path) -> Path:
    """busbw (collectives) or bw (device copies) against message size, log-log."""
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in recs:
        m = r["metrics"]
        if "busbw_gbps" in m:
            key = f"{m['op']} (n={m['world_size']}) busbw"
            series[key].append((m["size_bytes"], m["busbw_gbps"]))
        else:
            key = f"{m['kind']} {m.get('device') or (m.get('src', '') + '->' + m.get('dst', ''))}"
            series[key].append((m["size_bytes"], m["bw_gbps"]))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=key)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("size (bytes)")
    ax.set_ylabel("GB/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("bandwidth vs size")
    return _save(fig, path)


def plot_latency_vs_seqlen(recs: list[Rec], path: Path, metric: str = "median_ttft_ms") -> Path:
    """A latency metric against input length, one line per configuration."""
    series: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in recs:
        c, m = r["config"], r["metrics"]
        x = c.get("sequence_length", c.get("seq_len"))
        if x is not None and metric in m:
            series[series_label(r)].append((x, m[metric]))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for key, pts in sorted(series.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel(metric)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{metric} vs sequence length")
    return _save(fig, path)


LATENCIES = (("ttft", "TTFT"), ("tpot", "TPOT"), ("e2e_latency", "E2E latency"))
_SERVE_METRICS = ("request_throughput", "output_throughput") + tuple(
    f"{s}_{k}_ms" for k, _ in LATENCIES for s in ("median", "p90", "p99")
)


def load_positions(qps: list[float]) -> tuple[list[float], float | None]:
    """x positions for offered loads: finite rates as they are, ``inf`` (saturation: all
    requests at once) one step right of the largest finite rate.  Returns (xs, x of inf)."""
    finite = [q for q in qps if math.isfinite(q)]
    x_inf = (max(finite) * 1.5 if finite else 1.0) if len(finite) < len(qps) else None
    return [q if math.isfinite(q) else x_inf for q in qps], x_inf


def _err(sp: Any) -> float:
    return 0.0 if sp is None or math.isnan(sp.ci_half) else sp.ci_half


def throughput_figure(recs: list[Rec]) -> Any:
    """Achieved request and output throughput against offered load, saturation included.

    y starts at 0 (no zoom onto a few tok/s); error bars are the repeats' 95% CI; the
    ``inf`` point is drawn at the right end, labelled "inf (saturation)", and its value
    as a dashed line, so the saturation throughput of each configuration is on the plot.
    """
    pts = serving_points(recs, _SERVE_METRICS)
    all_q = sorted({p["qps"] for ps in pts.values() for p in ps})
    xs_all, x_inf = load_positions(all_q)
    pos = dict(zip(all_q, xs_all, strict=True))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, unit in zip(
        axes, ("request_throughput", "output_throughput"), ("req/s", "tok/s"), strict=True
    ):
        for i, (label, ps) in enumerate(sorted(pts.items())):
            ps = [p for p in ps if key in p]
            color = f"C{i}"
            ax.errorbar(
                [pos[p["qps"]] for p in ps],
                [p[key].mean for p in ps],
                yerr=[_err(p[key]) for p in ps],
                marker="o",
                capsize=3,
                color=color,
                label=label,
            )
            sat = [p for p in ps if not math.isfinite(p["qps"])]
            if sat:
                ax.axhline(sat[0][key].mean, color=color, ls="--", lw=0.8, alpha=0.7)
        finite = [q for q in all_q if math.isfinite(q)]
        if key == "request_throughput" and finite:
            ax.plot(finite, finite, color="gray", ls=":", lw=1, label="offered = achieved")
        ticks = [pos[q] for q in all_q]
        ax.set_xticks(ticks, [f"{q:g}" if math.isfinite(q) else "inf\n(saturation)" for q in all_q])
        ax.set_xlim(0, (max(ticks) if ticks else 1) * 1.12)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("offered load (req/s)")
        ax.set_ylabel(f"achieved {key.replace('_', ' ')} ({unit})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_title("request throughput vs offered load")
    axes[1].set_title("output throughput vs offered load")
    fig.tight_layout()
    return fig


def plot_throughput_vs_load(recs: list[Rec], path: Path) -> Path:
    return _save(throughput_figure(recs), path)


def latency_throughput_figure(recs: list[Rec]) -> Any:
    """TTFT, TPOT and E2E latency (median solid, p99 dashed) against achieved request
    throughput, one colour per configuration: the serving Pareto view."""
    pts = serving_points(recs, _SERVE_METRICS)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (k, name) in zip(axes, LATENCIES, strict=True):
        for i, (label, ps) in enumerate(sorted(pts.items())):
            for stat, ls in (("median", "-"), ("p99", "--")):
                key = f"{stat}_{k}_ms"
                q = [p for p in ps if key in p and "request_throughput" in p]
                ax.errorbar(
                    [p["request_throughput"].mean for p in q],
                    [p[key].mean for p in q],
                    xerr=[_err(p["request_throughput"]) for p in q],
                    yerr=[_err(p[key]) for p in q],
                    marker="o",
                    ls=ls,
                    capsize=2,
                    color=f"C{i}",
                    label=f"{label} {stat}",
                )
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.set_xlabel("achieved request throughput (req/s)")
        ax.set_ylabel(f"{name} (ms)")
        ax.set_title(f"{name} vs throughput")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_latency_vs_throughput(recs: list[Rec], path: Path) -> Path:
    return _save(latency_throughput_figure(recs), path)


def plot_serving_comparison(recs: list[Rec], path: Path) -> Path:
    """Latency percentiles of each configuration at its heaviest load (bars, log scale)."""
    by: dict[str, list[Rec]] = defaultdict(list)
    for r in recs:
        by[series_label(r)].append(r)
    fig, a1 = plt.subplots(1, 1, figsize=(7, 4))
    stats = ("median", "p90", "p99")
    width = 0.8 / max(len(by), 1)
    for i, (label, rs) in enumerate(sorted(by.items())):
        r = max(rs, key=lambda x: x["metrics"]["request_throughput"])  # heaviest load point
        vals = [r["metrics"][f"{s}_{k}_ms"] for k in ("ttft", "tpot", "e2e_latency") for s in stats]
        a1.bar(np.arange(len(vals)) + i * width, vals, width, label=label)
    a1.set_xticks(
        np.arange(9) + 0.4 - width / 2,
        [f"{s} {k}" for k in ("ttft", "tpot", "e2e") for s in stats],
        rotation=45,
        ha="right",
    )
    a1.set_yscale("log")
    a1.set_ylabel("ms")
    a1.set_title("latency distribution (heaviest load)")
    a1.legend(fontsize=8)
    return _save(fig, path)


def make_plots(records: Iterable[Rec], out_dir: str | Path) -> list[Path]:
    """Every plot the records support; returns the PNG paths."""
    out_dir = Path(out_dir)
    by: dict[str, list[Rec]] = defaultdict(list)
    for r in records:
        by[r["bench"]].append(r)
    made: list[Path] = []
    profiles = by.get("profile", [])
    for r in profiles:
        rank = r["metrics"].get("rank", 0)
        name = r["config"].get("name", "profile")
        if r["metrics"].get("ops"):
            made.append(plot_layer_heatmap(r, out_dir / f"{name}_layer_heatmap_rank{rank}.png"))
        made.append(plot_op_distribution(r, out_dir / f"{name}_op_time_rank{rank}.png"))
    if profiles:
        made.append(plot_compute_comm(profiles, out_dir / "compute_vs_comm.png"))
    for bench in ("bw_collectives", "bw_device"):
        if by.get(bench):
            made.append(plot_bandwidth(by[bench], out_dir / f"{bench}_vs_size.png"))
    serve = by.get("serve", [])
    if len({r["config"].get("sequence_length") for r in serve}) > 1:
        made.append(plot_latency_vs_seqlen(serve, out_dir / "latency_vs_seqlen.png"))
    if by.get("scaling"):
        made.append(
            plot_latency_vs_seqlen(
                by["scaling"], out_dir / "scaling_latency_vs_seqlen.png", metric="latency_ms"
            )
        )
    if serve:
        made.append(plot_throughput_vs_load(serve, out_dir / "throughput_vs_load.png"))
        made.append(plot_latency_vs_throughput(serve, out_dir / "latency_vs_throughput.png"))
        made.append(plot_serving_comparison(serve, out_dir / "serving_comparison.png"))
    logger.info("wrote %d plots to %s", len(made), out_dir)
    return made
