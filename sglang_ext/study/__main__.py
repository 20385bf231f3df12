"""``python -m sglang_ext.study {check,quick,comprehensive}``: the whole dp-vs-tp study.

  python -m sglang_ext.study check                       # versions, devices, patches, NCCL
  python -m sglang_ext.study quick                       # CPU, tiny default model, <= 10 min
  python -m sglang_ext.study comprehensive --config bench/study_8gpu.toml
  python -m sglang_ext.study quick --only serving,report --out-dir D --resume

Steps: env, bandwidth, latency, scaling, serving, sp_pp, profile, report.  Records go to
``--out-dir`` (default ``bench/results/study/<mode>``), the report to ``<out-dir>/report/``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from .config import STEPS, ConfigError, load_config

__all__ = ["main"]


def _steps(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m sglang_ext.study",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("mode", choices=("check", "quick", "comprehensive"))
    p.add_argument("--config", default=None, help="TOML file; defaults fill what it leaves out")
    p.add_argument("--only", type=_steps, default=(), help=f"STEP,... of {','.join(STEPS)}")
    p.add_argument("--skip", type=_steps, default=(), help="STEP,... to leave out")
    p.add_argument(
        "--out-dir", default=None, help="records and report (default bench/results/study/MODE)"
    )
    p.add_argument(
        "--resume", action="store_true", help="skip the steps whose records are complete"
    )
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars")
    return p


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[study] %(message)s", stream=sys.stdout)
    # check: against quick's needs, or with --config against the file over comprehensive's
    base = ("comprehensive" if a.config else "quick") if a.mode == "check" else a.mode
    try:
        cfg = load_config(base, a.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.mode == "check":
        from .check import FAIL, format_checks, run_checks

        items = run_checks(cfg, mode=base)
        print(format_checks(items))
        return 1 if any(i.verdict == FAIL for i in items) else 0
    from .runner import RunOptions, run_study

    opts = RunOptions(
        mode=a.mode,
        out_dir=Path(a.out_dir or f"bench/results/study/{a.mode}"),
        config_path=a.config,
        only=a.only,
        skip=a.skip,
        resume=a.resume,
        show_progress=not a.no_progress,
    )

    def _term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM: stop like Ctrl-C (children stopped, state kept)

    signal.signal(signal.SIGTERM, _term)
    try:
        return run_study(cfg, opts)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
