"""Run the selected steps in order: records as they come, failures recorded, resumable.

State lives in the output folder:
- ``study.json``: the mode and config of the run (``--resume`` refuses a different config);
- ``steps.jsonl``: one ``study_step`` record per finished, failed, skipped or interrupted
  step (status, error, wall time, record count, the command that reruns it);
- ``<n>_<step>/``: each step's records (JSONL, appended as they come) and logs.

A step is complete when its last status is ``ok`` or ``skipped``; ``--resume`` skips
complete steps and reruns the others (the serving step keeps its measured points; other
steps start over, their partial records moved to ``*.partial``).  The report is made
again on every run.  Ctrl-C stops the run, leaves every finished record and says how
to resume.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sglang_ext.perf.records import append_jsonl, make_record, read_jsonl

from .config import STEPS, ConfigError, StudyConfig, config_dict
from .steps import STEP_TABLE, StepContext, StepSkipped

__all__ = ["RunOptions", "run_study", "step_status", "step_dir", "select_steps"]

logger = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


@dataclass(kw_only=True, slots=True)
class RunOptions:
    """How to run a study (the CLI flags)."""

    mode: str
    """quick or comprehensive."""
    out_dir: Path
    """Output folder."""
    config_path: str | None = None
    """The TOML file, if any."""
    only: tuple[str, ...] = ()
    """Run only these steps."""
    skip: tuple[str, ...] = ()
    """Leave these steps out."""
    resume: bool = False
    """Skip the steps whose records are complete."""
    show_progress: bool = True
    """tqdm bars inside steps."""


def select_steps(cfg: StudyConfig, only: Sequence[str], skip: Sequence[str]) -> list[str]:
    for flag, names in (("--only", only), ("--skip", skip)):
        bad = [s for s in names if s not in STEPS]
        if bad:
            raise ConfigError(f"{flag}: unknown steps {bad}; valid steps: {list(STEPS)}")
    return [s for s in cfg.steps if (not only or s in only) and s not in skip]


def step_dir(out_dir: Path, name: str) -> Path:
    return out_dir / f"{STEPS.index(name) + 1}_{name}"


def step_status(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The last status record of every step in ``out_dir`` (metrics of ``study_step``)."""
    path = out_dir / "steps.jsonl"
    last: dict[str, dict[str, Any]] = {}
    if path.exists():
        for r in read_jsonl(path):
            last[r["config"]["step"]] = {**r["metrics"], "command": r["config"].get("command")}
    return last


def _command(opts: RunOptions, steps: Sequence[str] | None = None, resume: bool = False) -> str:
    cmd = ["python", "-m", "sglang_ext.study", opts.mode]
    if opts.config_path:
        cmd += ["--config", str(opts.config_path)]
    cmd += ["--out-dir", str(opts.out_dir)]
    if steps:
        cmd += ["--only", ",".join(steps)]
    if resume:
        cmd += ["--resume"]
    return shlex.join(cmd)


def _check_resume(opts: RunOptions, cfg: StudyConfig) -> None:
    path = opts.out_dir / "study.json"
    new = {"mode": opts.mode, "config": config_dict(cfg)}
    if opts.resume and path.exists():
        old = json.loads(path.read_text())
        old_cfg = {k: v for k, v in old.get("config", {}).items() if k != "steps"}
        new_cfg = {k: v for k, v in new["config"].items() if k != "steps"}
        if old.get("mode") != opts.mode or json.loads(json.dumps(new_cfg)) != old_cfg:
            diff = sorted(
                k
                for k in set(old_cfg) | set(new_cfg)
                if old_cfg.get(k) != json.loads(json.dumps(new_cfg)).get(k)
            )
            raise ConfigError(
                f"--resume: {path} was made by mode {old.get('mode')!r} with another config "
                f"(sections differing: {diff or ['mode']}); use the same mode and --config, "
                "or a new --out-dir"
            )
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=1, default=str) + "\n")


def _status(
    opts: RunOptions, name: str, status: str, t0: float, count: int, error: str = ""
) -> None:
    append_jsonl(
        opts.out_dir / "steps.jsonl",
        make_record(
            "study_step",
            {"step": name, "mode": opts.mode, "command": _command(opts, [name])},
            {
                "status": status,
                "error": error,
                "wall_s": time.perf_counter() - t0,
                "records": count,
                "step_index": STEPS.index(name) + 1,
            },
            env={},
        ),
    )


def run_study(cfg: StudyConfig, opts: RunOptions) -> int:
    """Run the selected steps; returns the exit code (0 ok, 1 a step failed, 130 Ctrl-C)."""
    from .report import write_study_report

    steps = select_steps(cfg, opts.only, opts.skip)
    _check_resume(opts, cfg)
    done = step_status(opts.out_dir) if opts.resume else {}
    failed = []
    m = len(steps)
    for n, name in enumerate(steps, 1):
        step = STEP_TABLE[name]
        prev = done.get(name, {}).get("status")
        if name != "report" and prev in ("ok", "skipped"):
            logger.info("step %d of %d: %s: already %s (--resume)", n, m, step.title, prev)
            continue
        logger.info("step %d of %d: %s", n, m, step.title)
        sdir = step_dir(opts.out_dir, name)
        if name != "report":
            sdir.mkdir(parents=True, exist_ok=True)
        rec_path = sdir / step.records
        if name not in ("serving", "report") and rec_path.exists():
            rec_path.replace(rec_path.with_suffix(".jsonl.partial"))
        ctx = StepContext(
            cfg=cfg,
            name=name,
            out_dir=opts.out_dir,
            step_dir=sdir,
            records_path=rec_path,
            command=_command(opts, [name]),
            show_progress=opts.show_progress,
        )
        t0 = time.perf_counter()
        try:
            if name == "report":
                path = write_study_report(cfg, opts.out_dir, steps=steps, mode=opts.mode)
                logger.info("report: %s", path)
                _status(opts, name, "ok", t0, 1)
            else:
                step.fn(ctx)
                _status(opts, name, "ok", t0, ctx.count)
                logger.info(
                    "step %d of %d: %s: ok, %d records (%.0f s)",
                    n,
                    m,
                    name,
                    ctx.count,
                    time.perf_counter() - t0,
                )
        except StepSkipped as e:
            _status(opts, name, "skipped", t0, ctx.count, str(e))
            logger.warning("step %d of %d: %s: skipped: %s", n, m, name, e)
        except KeyboardInterrupt:
            _status(opts, name, "interrupted", t0, ctx.count, "Ctrl-C")
            logger.error(
                "interrupted in step %d of %d (%s). Finished records are kept in %s.\n"
                "Resume with:\n  %s",
                n,
                m,
                name,
                opts.out_dir,
                _command(opts, opts.only or None, resume=True),
            )
            return EXIT_INTERRUPTED
        except Exception as e:  # noqa: BLE001 - recorded, and the next step runs
            tb = traceback.format_exc(limit=8)
            _status(opts, name, "failed", t0, ctx.count, f"{type(e).__name__}: {e}\n{tb}")
            failed.append(name)
            logger.error("step %d of %d: %s failed: %s: %s", n, m, name, type(e).__name__, e)
    if failed:
        logger.error(
            "failed steps: %s (errors in %s). Rerun them with:\n  %s",
            failed,
            opts.out_dir / "steps.jsonl",
            _command(opts, opts.only or None, resume=True),
        )
        return EXIT_FAILED
    return EXIT_OK
