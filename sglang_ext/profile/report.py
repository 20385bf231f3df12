"""The tp vs dp report from two ``profile_model`` records (matplotlib, Agg, PNG).

``python -m sglang_ext.profile.report RECORDS.jsonl --out-dir DIR`` takes the latest
``tp`` and ``dp`` records of the same phase, batch and input length and writes, side by
side: per-layer stacked bars of compute, communication and idle (rank 0); a layer x op
heatmap (us per step); communication bytes per step, measured next to the analytic count.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from sglang_ext.perf.records import read_jsonl  # noqa: E402

__all__ = ["pick_pair", "plot_layers", "plot_heatmaps", "plot_comm_bytes", "make_report", "main"]

Rec = dict[str, Any]
_KEY = ("phase", "batch_size", "input_len", "tp_size", "model_path")


def pick_pair(records: list[Rec]) -> tuple[Rec, Rec]:
    """The latest dp record and the latest tp record of the same configuration."""
    prof = [
        r
        for r in records
        if r.get("bench") == "profile_model" and r["metrics"].get("per_layer_us") is not None
    ]  # a CUDA-graph replay record has no per-layer numbers to plot
    for dp in reversed([r for r in prof if r["config"].get("single_expert_mode") == "dp"]):
        key = tuple(dp["config"].get(k) for k in _KEY)
        for tp in reversed([r for r in prof if r["config"].get("single_expert_mode") == "tp"]):
            if tuple(tp["config"].get(k) for k in _KEY) == key:
                return tp, dp
    raise ValueError(
        "no tp and dp profile_model records (with per-layer numbers) of the same phase, batch, "
        "input length, TP size and model: run `python -m sglang_ext.profile` with --single-expert-mode tp and dp"
    )


def _title(rec: Rec) -> str:
    c = rec["config"]
    return f"{c['single_expert_mode']}: TP{c['tp_size']} {c['phase']} B{c['batch_size']}x{c['input_len']}"


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_layers(recs: list[Rec], path: Path) -> Path:
    """Per decoder layer: compute, communication, idle (us per step, rank 0), stacked."""
    fig, axes = plt.subplots(1, len(recs), figsize=(6 * len(recs), 4), sharey=True, squeeze=False)
    for ax, rec in zip(axes[0], recs, strict=True):
        m = rec["metrics"]
        x = np.arange(len(m["per_layer_us"]))
        bottom = np.zeros(len(x))
        for part, color in (("compute", "tab:blue"), ("comm", "tab:orange"), ("idle", "tab:gray")):
            v = np.array(m[f"per_layer_{part}_us"])
            ax.bar(x, v, bottom=bottom, label=part, color=color)
            bottom += v
        ax.set(title=_title(rec), xlabel="decoder layer", ylabel="us per step")
        ax.legend()
    return _save(fig, path)


def plot_heatmaps(recs: list[Rec], path: Path) -> Path:
    """Layer x op time (us per step), one panel per record."""
    ops = sorted({op for r in recs for op in r["metrics"]["ops_us"]})
    fig, axes = plt.subplots(1, len(recs), figsize=(6 * len(recs), 4), squeeze=False)
    for ax, rec in zip(axes[0], recs, strict=True):
        m = rec["metrics"]
        n = len(m["per_layer_us"])
        grid = np.array([m["ops_us"].get(op, [0.0] * n) for op in ops]).T  # [layers, ops]
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(ops)), ops, rotation=60, ha="right")
        ax.set(title=_title(rec), ylabel="decoder layer")
        fig.colorbar(im, ax=ax, label="us per step")
    return _save(fig, path)


def plot_comm_bytes(recs: list[Rec], path: Path) -> Path:
    """Bytes per step of each collective: measured and the analytic count."""
    kinds = sorted({k for r in recs for k in r["metrics"]["comm"]})
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / (2 * len(recs))
    x = np.arange(len(kinds))
    for i, rec in enumerate(recs):
        m, mode = rec["metrics"], rec["config"]["single_expert_mode"]
        meas = [m["comm"].get(k, {}).get("bytes", 0) for k in kinds]
        ana = [((m.get("comm_analytic") or {}).get(k) or {}).get("bytes", 0) for k in kinds]
        ax.bar(x + (2 * i) * width, meas, width, label=f"{mode} measured")
        ax.bar(x + (2 * i + 1) * width, ana, width, label=f"{mode} analytic", hatch="//", alpha=0.6)
    ax.set_xticks(x + width * (len(recs) - 0.5), kinds)
    ax.set(ylabel="bytes per step", title="communication per step")
    ax.legend()
    return _save(fig, path)


def make_report(records: list[Rec], out_dir: str | Path) -> list[Path]:
    """The three PNGs for the latest matching tp/dp pair."""
    tp, dp = pick_pair(records)
    out = Path(out_dir)
    return [
        plot_layers([tp, dp], out / "profile_layers_tp_vs_dp.png"),
        plot_heatmaps([tp, dp], out / "profile_heatmap_tp_vs_dp.png"),
        plot_comm_bytes([tp, dp], out / "profile_comm_bytes_tp_vs_dp.png"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sglang_ext.profile.report", description=__doc__)
    p.add_argument("records", help="JSONL file with profile_model records")
    p.add_argument("--out-dir", default="bench/results/report")
    a = p.parse_args(argv)
    try:
        paths = make_report(list(read_jsonl(a.records)), a.out_dir)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
