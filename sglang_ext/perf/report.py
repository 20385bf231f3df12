"""Markdown report from result records (tables) plus the PNGs of :mod:`plots`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .plots import make_plots, series_label

__all__ = ["markdown_table", "write_report"]

_SERVE_COLS = (
    "qps",
    "completed",
    "failed_requests",
    "request_throughput",
    "output_throughput",
    "median_ttft_ms",
    "p99_ttft_ms",
    "median_tpot_ms",
    "p99_tpot_ms",
    "median_itl_ms",
    "median_e2e_latency_ms",
    "p99_e2e_latency_ms",
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def write_report(
    records: Iterable[dict[str, Any]],
    out_dir: str | Path,
    *,
    title: str = "sglang-ext benchmark report",
) -> Path:
    """Write ``report.md`` (and its plots) into ``out_dir``; returns its path."""
    recs = list(records)
    out_dir = Path(out_dir)
    pngs = make_plots(recs, out_dir)
    parts = [f"# {title}", ""]
    if recs:
        env = recs[0].get("env", {})
        parts += [
            f"Device: {env.get('device')} x{env.get('device_count')}; versions: "
            f"{env.get('versions')}; git {recs[0].get('git_sha')}; first record {recs[0]['ts']}",
            "",
        ]
    serve = [r for r in recs if r["bench"] == "serve"]
    if serve:
        rows = [
            [series_label(r)]
            + [
                r["config"].get(c, r["metrics"].get(c)) if c == "qps" else r["metrics"].get(c)
                for c in _SERVE_COLS
            ]
            for r in serve
        ]
        parts += ["## Serving", "", markdown_table(["config", *_SERVE_COLS], rows), ""]
        errs = {
            series_label(r): r["metrics"]["errors"] for r in serve if r["metrics"].get("errors")
        }
        if errs:
            parts += ["Failed requests: " + "; ".join(f"{k}: {v}" for k, v in errs.items()), ""]
    bw = [r for r in recs if r["bench"] == "bw_collectives"]
    if bw:
        rows = [
            [
                r["metrics"][k]
                for k in ("op", "world_size", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps")
            ]
            for r in bw
        ]
        parts += [
            "## Collectives (nccl-tests definitions)",
            "",
            markdown_table(
                ["op", "n", "size (B)", "time (us)", "algbw (GB/s)", "busbw (GB/s)"], rows
            ),
            "",
        ]
    for r in (r for r in recs if r["bench"] == "profile"):
        m = r["metrics"]
        b = m["breakdown"]
        parts += [
            f"## Profile {r['config'].get('name')} rank {m.get('rank')}",
            "",
            f"{len(m['layers'])} layers, {m['iter_ms']:.3g} ms/iter, profiler overhead "
            f"{m['profiler_overhead_pct']:.0f}%. Compute {b['compute_us']:.0f} us, comm "
            f"{b['comm_us']:.0f} us (exposed {b['exposed_comm_us']:.0f} us), idle {b['idle_us']:.0f} us.",
            "",
            markdown_table(
                ["bottleneck", "total (us)", "share"],
                [[x["name"][:60], x["total_us"], x["share"]] for x in m["bottlenecks"][:5]],
            ),
            "",
        ]
        if m["comm"]:
            parts += [
                markdown_table(
                    ["collective", "count", "bytes", "time (us)", "GB/s"],
                    [
                        [k, v["count"], v["bytes"], v["time_us"], v["bw_gbps"]]
                        for k, v in m["comm"].items()
                    ],
                ),
                "",
            ]
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in pngs]
    path = out_dir / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path
