"""Markdown report from result records: verdicts, tables, commands, plus the PNGs of :mod:`plots`.

The serving section answers "which configuration serves better": for every metric
and offered load, the configurations' means over repeats with their 95% confidence
intervals, the ratio against the first configuration (the baseline), and whether the
difference exceeds the spread (the intervals do not overlap).  One verdict line per
metric is given at saturation (the heaviest offered load, ``inf`` when run).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sglang_ext.perf.stats import Spread, compare_spread, serving_points

from .plots import make_plots

__all__ = [
    "markdown_table",
    "VERDICT_METRICS",
    "serving_verdicts",
    "serving_section",
    "write_report",
]

Rec = dict[str, Any]

# metric, what it is, unit, higher is better
VERDICT_METRICS: tuple[tuple[str, str, str, bool], ...] = (
    ("request_throughput", "request throughput", "req/s", True),
    ("output_throughput", "output throughput", "tok/s", True),
    ("median_ttft_ms", "median TTFT", "ms", False),
    ("p99_ttft_ms", "p99 TTFT", "ms", False),
    ("median_tpot_ms", "median TPOT", "ms", False),
    ("p99_tpot_ms", "p99 TPOT", "ms", False),
    ("median_e2e_latency_ms", "median E2E latency", "ms", False),
    ("p99_e2e_latency_ms", "p99 E2E latency", "ms", False),
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _qps(q: float) -> str:
    return f"{q:g}" if math.isfinite(q) else "inf (saturation)"


def _pm(sp: Spread | None) -> str:
    if sp is None:
        return "-"
    if math.isnan(sp.ci_half):
        return f"{sp.mean:.4g} (n=1)"
    return f"{sp.mean:.4g} ± {sp.ci_half:.2g}"


def serving_verdicts(records: Iterable[Rec], baseline: str | None = None) -> list[dict[str, Any]]:
    """One row per (configuration other than the baseline, offered load, metric).

    Row keys: ``label``, ``baseline``, ``qps``, ``metric``, ``name``, ``unit``,
    ``higher_is_better``, ``base`` and ``other`` (:class:`Spread`), ``ratio``
    (other / baseline mean), ``better`` (label or None when equal), ``beyond_spread``
    (True/False, None with a single repeat).
    """
    recs = list(records)
    pts = serving_points(recs, [m for m, *_ in VERDICT_METRICS])
    order = list(
        dict.fromkeys(str(r["config"].get("label")) for r in recs if r["bench"] == "serve")
    )
    order = [x for x in order if x in pts]
    if not order:
        return []
    base = baseline if baseline in pts else order[0]
    rows = []
    base_pts = {p["qps"]: p for p in pts[base]}
    for label in order:
        if label == base:
            continue
        for p in pts[label]:
            b = base_pts.get(p["qps"])
            if b is None:
                continue
            for metric, name, unit, higher in VERDICT_METRICS:
                if metric not in p or metric not in b:
                    continue
                o, s = p[metric], b[metric]
                ratio = o.mean / s.mean if s.mean else math.nan
                better = None
                if o.mean != s.mean:
                    better = label if (o.mean > s.mean) == higher else base
                rows.append(
                    {
                        "label": label,
                        "baseline": base,
                        "qps": p["qps"],
                        "metric": metric,
                        "name": name,
                        "unit": unit,
                        "higher_is_better": higher,
                        "base": s,
                        "other": o,
                        "ratio": ratio,
                        "better": better,
                        "beyond_spread": compare_spread(o, s),
                    }
                )
    return rows


def _verdict_line(v: dict[str, Any]) -> str:
    b, o = v["base"], v["other"]
    head = (
        f"**{v['name']}** at {_qps(v['qps'])}: {v['label']} / {v['baseline']} = "
        f"{v['ratio']:.3g} ({o.mean:.4g} vs {b.mean:.4g} {v['unit']}"
    )
    n = f"n = {o.n} and {b.n} repeats"
    if v["beyond_spread"] is None:
        return head + f"; {n}): no spread with one repeat, run repeats >= 2 to decide."
    if not v["beyond_spread"]:
        return head + f"; {n}): within the spread (95% CIs overlap), no difference shown."
    return head + f"; {n}): **{v['better']} is better**, beyond the spread (95% CIs apart)."


def _gpu_memory_rows(serve: list[Rec]) -> list[list[Any]]:
    rows = []
    for r in serve:
        for g in r["metrics"].get("gpu_memory") or []:
            rows.append(
                [
                    r["config"].get("label"),
                    _qps(float(r["config"].get("qps", math.inf))),
                    r["config"].get("repeat", 0),
                    g.get("index"),
                    g.get("name"),
                    g.get("used_gb"),
                    g.get("total_gb"),
                ]
            )
    return rows


def serving_section(recs: Sequence[Rec]) -> list[str]:
    """Markdown lines: verdicts, per-point table, greedy agreement, commands, GPU memory."""
    serve = [r for r in recs if r["bench"] == "serve"]
    greedy = [r for r in recs if r["bench"] == "greedy"]
    if not serve and not greedy:
        return []
    parts = ["## Serving: which configuration serves better", ""]
    verdicts = serving_verdicts(serve)
    if verdicts:
        heaviest = max(v["qps"] for v in verdicts)
        parts += [
            f"Verdicts at the heaviest offered load ({_qps(heaviest)}); ratio = configuration "
            f"/ baseline ({verdicts[0]['baseline']}); spread = 95% Student-t confidence "
            "interval of the mean over repeats:",
            "",
        ]
        parts += [f"- {_verdict_line(v)}" for v in verdicts if v["qps"] == heaviest]
        parts += [
            "",
            "Every offered load:",
            "",
            markdown_table(
                ["offered load", "metric", "baseline", "config", "ratio", "beyond spread"],
                [
                    [
                        _qps(v["qps"]),
                        v["name"] + f" ({v['unit']})",
                        f"{v['baseline']}: {_pm(v['base'])}",
                        f"{v['label']}: {_pm(v['other'])}",
                        v["ratio"],
                        {None: "n/a (n=1)", True: f"yes ({v['better']} better)", False: "no"}[
                            v["beyond_spread"]
                        ],
                    ]
                    for v in verdicts
                ],
            ),
            "",
        ]
    if greedy:
        outs = {r["config"]["label"]: r["metrics"]["output_ids"] for r in greedy}
        same = len({str(v) for v in outs.values()}) == 1
        parts += [
            f"Greedy tokens on {len(next(iter(outs.values())))} fixed prompts: "
            + (
                "identical across " + ", ".join(outs) + " (they compute the same model)."
                if same
                else "**differ** between configurations: "
                + "; ".join(f"{k}: {v}" for k, v in outs.items())
            ),
            "",
        ]
    if serve:
        pts = serving_points(serve, [m for m, *_ in VERDICT_METRICS] + ["completed"])
        rows = []
        for label, ps in pts.items():
            for p in ps:
                rows.append(
                    [label, _qps(p["qps"]), p["n"]] + [_pm(p.get(m)) for m, *_ in VERDICT_METRICS]
                )
        parts += [
            "Mean ± 95% CI over repeats:",
            "",
            markdown_table(
                ["config", "offered load", "repeats"]
                + [f"{n} ({u})" for _, n, u, _ in VERDICT_METRICS],
                rows,
            ),
            "",
        ]
        errs = {
            f"{r['config'].get('label')} qps {r['config'].get('qps')}": r["metrics"]["errors"]
            for r in serve
            if r["metrics"].get("errors")
        }
        if errs:
            parts += ["Failed requests: " + "; ".join(f"{k}: {v}" for k, v in errs.items()), ""]
        cmds: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for r in serve:
            c = r["config"]
            if c.get("server_cmd"):
                cmds[c.get("label")]["server"].add(" ".join(map(str, c["server_cmd"])))
            if c.get("client_cmd"):
                cmds[c.get("label")]["client"].add(" ".join(map(str, c["client_cmd"])))
        if cmds:
            parts += ["### Commands", ""]
            for label, kinds in cmds.items():
                parts += [f"{label}:", "", "```bash"]
                parts += [f"# server\n{x}" for x in sorted(kinds["server"])]
                parts += [f"# client\n{x}" for x in sorted(kinds["client"])]
                parts += ["```", ""]
        mem = _gpu_memory_rows(serve)
        parts += ["### GPU memory per rank (end of each run)", ""]
        if mem:
            parts += [
                markdown_table(
                    ["config", "offered load", "repeat", "GPU", "name", "used (GB)", "total (GB)"],
                    mem,
                ),
                "",
            ]
        else:
            parts += ["No GPU on this host: no device memory to report.", ""]
    return parts


def _collectives(recs: Sequence[Rec]) -> list[str]:
    bw = [r for r in recs if r["bench"] == "bw_collectives"]
    if not bw:
        return []
    keys = ("op", "world_size", "size_bytes", "time_us", "algbw_gbps", "busbw_gbps")
    return [
        "## Collectives (nccl-tests definitions)",
        "",
        markdown_table(
            ["op", "n", "size (B)", "time (us)", "algbw (GB/s)", "busbw (GB/s)"],
            [[r["metrics"][k] for k in keys] for r in bw],
        ),
        "",
    ]


def _device_bw(recs: Sequence[Rec]) -> list[str]:
    bw = [r for r in recs if r["bench"] == "bw_device"]
    if not bw:
        return []
    return [
        "## Device and host copies",
        "",
        markdown_table(
            ["kind", "device", "size (B)", "time (us)", "GB/s"],
            [
                [
                    m["kind"],
                    m.get("device") or f"{m.get('src')}->{m.get('dst')}",
                    m["size_bytes"],
                    m["time_us"],
                    m["bw_gbps"],
                ]
                for m in (r["metrics"] for r in bw)
            ],
        ),
        "",
    ]


def _scaling(recs: Sequence[Rec]) -> list[str]:
    sc = [r for r in recs if r["bench"] == "scaling"]
    if not sc:
        return []
    rows = [
        [
            r["config"].get("tp_size"),
            r["config"].get("batch_size"),
            r["config"].get("seq_len"),
            r["metrics"].get("prefill_latency", math.nan) * 1e3,
            r["metrics"].get("median_decode_latency", math.nan) * 1e3,
            r["metrics"].get("speedup_prefill_latency", "-"),
            r["metrics"].get("efficiency_prefill_latency", "-"),
            r["metrics"].get("efficiency_median_decode_latency", "-"),
        ]
        for r in sc
    ]
    return [
        "## Latency vs sequence length, batch and TP size (sglang.bench_one_batch)",
        "",
        "Efficiency = t_1 / (n t_n) against TP 1 at the same batch and length.",
        "",
        markdown_table(
            [
                "tp",
                "batch",
                "input len",
                "prefill (ms)",
                "decode step (ms)",
                "prefill speedup",
                "prefill efficiency",
                "decode efficiency",
            ],
            rows,
        ),
        "",
    ]


def _sp_pp(recs: Sequence[Rec]) -> list[str]:
    sp = [r for r in recs if r["bench"] in ("sp_pp", "sp_pp_sglang")]
    if not sp:
        return []
    rows = []
    for r in sp:
        c, m = r["config"], r["metrics"]
        rows.append(
            [
                c.get("nprocs", c.get("config")),
                c.get("sync"),
                m.get("measured_prompt_len", c.get("prompt_len")),
                m.get("measured_prefill_s"),
                m.get("model_prefill_s"),
                m.get("speedup"),
                m.get("scaling_efficiency"),
                m.get("measured_bubble_frac"),
            ]
        )
    return [
        "## SP+PP prefill (sglang_ext.engine) against the analytic model",
        "",
        markdown_table(
            [
                "ranks",
                "sync",
                "prompt",
                "prefill (s)",
                "model (s)",
                "speedup",
                "efficiency",
                "bubble",
            ],
            rows,
        ),
        "",
    ]


def _profiles(recs: Sequence[Rec]) -> list[str]:
    parts: list[str] = []
    for r in (r for r in recs if r["bench"] == "profile"):
        m = r["metrics"]
        if "breakdown" not in m:
            continue
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
        if m.get("comm"):
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
    return parts


def write_report(
    records: Iterable[Rec],
    out_dir: str | Path,
    *,
    title: str = "sglang-ext benchmark report",
    intro: Sequence[str] = (),
    outro: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` (and its plots) into ``out_dir``; returns its path.

    ``intro`` lines go after the title, ``outro`` lines at the end (the study puts its
    step table and record index there).
    """
    recs = list(records)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pngs = make_plots(recs, out_dir)
    parts = [f"# {title}", "", *intro]
    if recs:
        env = recs[0].get("env", {})
        parts += [
            f"Device: {env.get('device')} x{env.get('device_count')}; versions: "
            f"{env.get('versions')}; git {recs[0].get('git_sha')}; first record {recs[0]['ts']}",
            "",
        ]
    parts += serving_section(recs)
    parts += _scaling(recs) + _sp_pp(recs) + _collectives(recs) + _device_bw(recs)
    parts += _profiles(recs)
    parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in pngs] + [""]
    parts += list(outro)
    path = out_dir / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path
