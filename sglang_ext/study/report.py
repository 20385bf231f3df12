"""Step 8: one report over every step's records, a step table, profile links and an index.

``<out>/report/report.md`` holds: the question and its answer (the serving verdicts
of :mod:`sglang_ext.perf.report.markdown`), a table naming every step with its status, the
per-layer profile links, every section and plot the records support, and an index of
every record (file and line, what it is, the command that made it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sglang_ext.perf.records import read_jsonl
from sglang_ext.perf.report.markdown import markdown_table, serving_verdicts, write_report

from .config import STEPS, StudyConfig
from .steps import STEP_TABLE

__all__ = ["collect_records", "write_study_report"]

Rec = dict[str, Any]


def collect_records(out_dir: Path) -> list[tuple[Path, int, Rec]]:
    """(file, line, record) of every step's records under ``out_dir``, in step order."""
    from .runner import step_dir

    out = []
    for name in STEPS:
        step = STEP_TABLE[name]
        if step.fn is None:
            continue
        path = step_dir(out_dir, name) / step.records
        if path.exists():
            out += [(path, i, r) for i, r in enumerate(read_jsonl(path), 1)]
    return out


def _summary(r: Rec) -> str:
    c, m = r.get("config", {}), r.get("metrics", {})
    b = r["bench"]
    if b == "serve":
        return f"{c.get('label')} qps {c.get('qps')} repeat {c.get('repeat', 0)}: {m.get('completed')}/{m.get('num_requests')} ok"
    if b == "greedy":
        return f"{c.get('label')} greedy tokens"
    if b == "scaling":
        return f"tp {c.get('tp_size')} batch {c.get('batch_size')} len {c.get('seq_len')}"
    if b in ("bw_device", "bw_collectives"):
        return f"{m.get('kind') or m.get('op')} {m.get('size_bytes')} B"
    if b == "sp_pp":
        return f"N {c.get('nprocs')} {c.get('sync') or ''} prompt {c.get('prompt_len')}"
    if b == "env_check":
        bad = [v["name"] for v in m.get("verdicts", []) if v["verdict"] != "ok"]
        return "environment" + (f" (not ok: {', '.join(bad)})" if bad else " (all ok)")
    return str(c.get("label") or c.get("name") or b)


def _made_by(r: Rec) -> str:
    c = r.get("config", {})
    parts = []
    if c.get("server_cmd"):
        parts.append("server: `" + " ".join(map(str, c["server_cmd"])) + "`")
    if c.get("client_cmd"):
        parts.append("client: `" + " ".join(map(str, c["client_cmd"])) + "`")
    if c.get("command"):
        parts.append("`" + str(c["command"]) + "`")
    return "; ".join(parts) or "-"


def _links(r: Rec, report_dir: Path) -> list[str]:
    m, c = r.get("metrics", {}), r.get("config", {})
    paths: list[str] = []
    for v in (m.get("traces"), m.get("trace"), m.get("report")):
        if isinstance(v, str):
            paths.append(v)
        elif isinstance(v, list):
            paths += [str(x) for x in v]
    d = c.get("output_dir") or c.get("out_dir")
    if not paths and d and Path(d).is_dir():
        paths = [str(p) for p in sorted(Path(d).glob("*.json"))]
    return [f"[{Path(p).name}]({os.path.relpath(p, report_dir)})" for p in paths]


def write_study_report(cfg: StudyConfig, out_dir: Path, *, steps: Sequence[str], mode: str) -> Path:
    from .runner import step_status

    report_dir = out_dir / "report"
    report_dir.mkdir(parents=True, exist_ok=True)
    indexed = collect_records(out_dir)
    recs = [r for _, _, r in indexed]
    status = step_status(out_dir)
    intro = [
        "**The question:** for a Mixture-of-Experts model pruned to one expert, does "
        "replicating the expert and splitting tokens between ranks (`dp`) serve better than "
        "sharding the expert over the TP ranks (`tp`)?",
        "",
    ]
    verdicts = serving_verdicts(recs)
    if verdicts:
        heaviest = max(v["qps"] for v in verdicts)
        for v in verdicts:
            if v["qps"] == heaviest and v["metric"] == "output_throughput":
                where = "saturation" if heaviest == float("inf") else f"{heaviest:g} req/s"
                if v["beyond_spread"]:
                    ans = f"**{v['better']}** ({v['label']} / {v['baseline']} = {v['ratio']:.3g} at {where}, beyond the spread)"
                elif v["beyond_spread"] is None:
                    ans = f"undecided: one repeat ({v['label']} / {v['baseline']} = {v['ratio']:.3g} at {where})"
                else:
                    ans = f"no difference beyond the spread ({v['label']} / {v['baseline']} = {v['ratio']:.3g} at {where})"
                intro += [f"**Answer (output throughput):** {ans}. Every metric below.", ""]
    else:
        intro += ["**Answer:** no serving records (step 5 did not run or failed).", ""]
    rows = []
    for name in STEPS:
        s = status.get(name)
        sel = name in steps
        err = (s or {}).get("error", "").strip().splitlines()
        rows.append(
            [
                STEPS.index(name) + 1,
                f"{name}: {STEP_TABLE[name].title}",
                (s or {}).get("status", "not run" if not sel else "not run yet")
                if name != "report"
                else "ok (this report)",
                f"{s['wall_s']:.1f}" if s else "-",
                (s or {}).get("records", 0),
                (err[0][:160] if err else ""),
            ]
        )
    env = [r for r in recs if r["bench"] == "env_check"]
    env_rows = (
        [[v["name"], v["verdict"], v["detail"]] for v in env[-1]["metrics"].get("verdicts", [])]
        if env
        else []
    )
    intro += [
        f"Mode `{mode}`; config in `{out_dir / 'study.json'}`.",
        "",
        "## Steps",
        "",
        markdown_table(["#", "step", "status", "wall (s)", "records", "error / reason"], rows),
        "",
    ]
    if env_rows:
        intro += [
            "## Environment check",
            "",
            markdown_table(["item", "verdict", "detail"], env_rows),
            "",
        ]
    intro += ["## Per-layer profiles", ""]
    prof = [r for r in recs if r["config"].get("study_step") == "profile"]
    if prof:
        for r in prof:
            links = _links(r, report_dir)
            intro.append(f"- {_summary(r)}: " + (", ".join(links) or "(no trace files named)"))
    else:
        why = (status.get("profile") or {}).get("error") or "the profile step did not run"
        intro.append(f"No per-layer profiles: {why}.")
    intro.append("")
    index = [
        "## Index of records",
        "",
        markdown_table(
            ["record", "bench", "what", "made by"],
            [
                [f"`{os.path.relpath(p, out_dir)}:{i}`", r["bench"], _summary(r), _made_by(r)]
                for p, i, r in indexed
            ],
        ),
        "",
    ]
    return write_report(recs, report_dir, title=cfg.title, intro=intro, outro=index)
