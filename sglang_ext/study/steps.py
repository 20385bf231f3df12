"""The study's steps 1-7: each calls the library that does the job and writes records.

A step is ``fn(ctx)``: it appends its records to ``ctx.records_path`` as they come
(:meth:`StepContext.emit`), may open a tqdm bar with :meth:`StepContext.bar`, and raises
on failure (the runner records the error and goes on).  :class:`StepSkipped` marks a
step that cannot run here, with its reason.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sglang_ext.perf.records import append_jsonl, make_record, read_jsonl

from .config import StudyConfig

__all__ = ["StepContext", "StepSkipped", "Step", "STEP_TABLE", "model_args"]

logger = logging.getLogger(__name__)


class StepSkipped(Exception):
    """The step cannot run on this host or install; the message says why."""


@dataclass(kw_only=True, slots=True)
class StepContext:
    """What a running step gets."""

    cfg: StudyConfig
    """The study config."""
    name: str
    """Step name."""
    out_dir: Path
    """The study's output folder."""
    step_dir: Path
    """This step's folder (records, logs)."""
    records_path: Path
    """This step's JSONL records."""
    command: str
    """The study command that reruns only this step."""
    show_progress: bool = True
    """Draw tqdm bars."""
    count: int = 0
    """Records written so far."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Free space for steps (e.g. the model folder)."""

    def emit(self, rec: dict[str, Any]) -> None:
        rec["config"].setdefault("study_step", self.name)
        rec["config"].setdefault("command", self.command)
        append_jsonl(self.records_path, rec)
        self.count += 1

    def bar(self, total: int, desc: str) -> Any:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, disable=not self.show_progress, leave=False)


def model_args(ctx: StepContext) -> list[str]:
    """Server flags naming the model: a path, a preset with dummy weights, or the default."""
    m = ctx.cfg.model
    args: list[str] = []
    if m.path:
        args += ["--model-path", m.path]
    elif m.preset:
        from sglang_ext.presets import materialize

        d = materialize(m.preset, ctx.out_dir / "model" / m.preset)
        args += ["--model-path", str(d), "--load-format", "dummy"]
    return args + shlex.split(m.server_args)


# -- 1. environment ---------------------------------------------------------------------------


def step_env(ctx: StepContext) -> None:
    from sglang_ext.perf.comm.envcheck import env_report

    from .check import FAIL, run_checks

    rep = env_report()
    items = run_checks(ctx.cfg, report=rep)
    verdicts = [{"name": i.name, "verdict": i.verdict, "detail": i.detail} for i in items]
    ctx.emit(make_record("env_check", {}, {**rep, "verdicts": verdicts}, env=rep["env"]))
    bad = [i.name for i in items if i.verdict == FAIL]
    if bad:
        raise RuntimeError(
            f"required items missing: {bad} (run `python -m sglang_ext.study check`)"
        )


# -- 2. bandwidth -----------------------------------------------------------------------------


def _collective_rank(rank: int, world: int, port: int, backend: str, cfg: Any, out: str) -> None:
    """One spawned rank of the collective sweep; rank 0 writes the rows."""
    import json

    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    import torch.distributed as dist

    from sglang_ext.perf.comm.collectives import run_sweep
    from sglang_ext.perf.dist_env import init_dist

    group, device = init_dist(backend, timeout_s=120)
    try:
        rows = run_sweep(cfg, group=group, device=device)
        if rank == 0:
            Path(out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    finally:
        dist.destroy_process_group()


def _spawn_with_deadline(fn: Callable, world: int, args: tuple, timeout_s: float) -> None:
    import torch.multiprocessing as mp

    from sglang_ext.net import free_port

    pc = mp.start_processes(
        fn, args=(world, free_port(), *args), nprocs=world, start_method="spawn", join=False
    )
    deadline = time.monotonic() + timeout_s
    try:
        while not pc.join(timeout=1.0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"collective ranks still running after {timeout_s:.0f} s")
    finally:
        for p in pc.processes:
            if p.is_alive():
                p.kill()
                p.join(5)


def step_bandwidth(ctx: StepContext) -> None:
    import json

    import torch

    from sglang_ext.perf.comm.collectives import CollectiveConfig, size_sweep
    from sglang_ext.perf.comm.devbw import device_copy_bw, host_device_bw, peer_copy_bw

    b = ctx.cfg.bandwidth
    sizes = size_sweep(b.min_bytes, b.max_bytes, b.factor)
    cuda = torch.cuda.is_available()
    devs = [torch.device("cuda", i) for i in range(torch.cuda.device_count())] if cuda else []
    jobs: list[tuple[Callable[[], dict[str, Any]], str]] = []
    for d in devs or [torch.device("cpu")]:
        jobs += [(lambda s=s, d=d: device_copy_bw(s, d, iters=b.iters), "bw_device") for s in sizes]
        if d.type == "cuda":
            jobs += [
                (lambda s=s, d=d, k=k: host_device_bw(s, d, k, iters=b.iters), "bw_device")
                for k in ("h2d", "d2h")
                for s in sizes
            ]
    for i, src in enumerate(devs):
        for dst in devs[i + 1 :]:
            jobs += [
                (lambda s=s, a=src, z=dst: peer_copy_bw(s, a, z, iters=b.iters), "bw_device")
                for s in sizes
            ]
    cfg = {"min_bytes": b.min_bytes, "max_bytes": b.max_bytes, "factor": b.factor, "iters": b.iters}
    with ctx.bar(len(jobs) + 1, "bandwidth") as bar:
        for fn, bench in jobs:
            ctx.emit(make_record(bench, cfg, fn()))
            bar.update(1)
        world = b.ranks or (len(devs) if cuda else 2)
        backend = "nccl" if cuda else "gloo"
        if world < 2:
            logger.warning("collectives need >= 2 ranks (found %d GPU): skipped", world)
            return
        ccfg = CollectiveConfig(
            ops=b.ops, min_bytes=b.min_bytes, max_bytes=b.max_bytes, factor=b.factor, iters=b.iters
        )
        out = ctx.step_dir / "collectives_rank0.jsonl"
        _spawn_with_deadline(_collective_rank, world, (backend, ccfg, str(out)), b.timeout_s)
        env_cfg = {"ops": list(b.ops), "backend": backend, "world_size": world}
        for line in out.read_text().splitlines():
            ctx.emit(make_record("bw_collectives", env_cfg, json.loads(line)))
        bar.update(1)


# -- 3./4. bench_one_batch --------------------------------------------------------------------

_ONE_BATCH = f"{sys.executable} -m sglang_ext.study.one_batch"


def _one_batch_rows(
    ctx: StepContext, tp: int, mode: str, batch, lens, out_len, timeout_s
) -> tuple[list[dict], str]:
    from sglang_ext.perf.scaling import run_bench_one_batch

    server = [*model_args(ctx), "--tp-size", str(tp), "--single-expert-mode", mode]
    cmd = shlex.join(
        [
            *shlex.split(_ONE_BATCH),
            *server,
            "--batch-size",
            *map(str, batch),
            "--input-len",
            *map(str, lens),
            "--output-len",
            str(out_len),
        ]
    )
    rows = run_bench_one_batch(
        server,
        batch_sizes=batch,
        input_lens=lens,
        output_len=out_len,
        runner=_ONE_BATCH,
        timeout_s=timeout_s,
        log_path=ctx.step_dir / f"bench_one_batch_tp{tp}.log",
    )
    return [{**r, "tp_size": tp} for r in rows], cmd


def _emit_scaling(ctx: StepContext, rows: list[dict], cmds: dict[int, str]) -> None:
    from sglang_ext.perf.scaling import scaling_table

    for r in scaling_table(rows):
        config = {
            "tp_size": r["tp_size"],
            "batch_size": r["batch_size"],
            "seq_len": r["input_len"],
            "output_len": r["output_len"],
            "label": f"tp{r['tp_size']} bs{r['batch_size']}",
            "command": cmds[r["tp_size"]],
        }
        ctx.emit(make_record("scaling", config, {**r, "latency_ms": r["prefill_latency"] * 1e3}))


def _check_devices(tps: list[int]) -> list[int]:
    import torch

    if not torch.cuda.is_available():
        return tps
    n = torch.cuda.device_count()
    keep = [t for t in tps if t <= n]
    if len(keep) < len(tps):
        logger.warning(
            "TP sizes %s need more than the %d GPUs here: left out", set(tps) - set(keep), n
        )
    return keep


def step_latency(ctx: StepContext) -> None:
    c = ctx.cfg.latency
    with ctx.bar(1, "bench_one_batch") as bar:
        rows, cmd = _one_batch_rows(
            ctx,
            c.tp_size,
            c.single_expert_mode,
            c.batch_sizes,
            c.input_lens,
            c.output_len,
            c.timeout_s,
        )
        bar.update(1)
    _emit_scaling(ctx, rows, {c.tp_size: cmd})


def step_scaling(ctx: StepContext) -> None:
    c = ctx.cfg.scaling
    tps = _check_devices(sorted(set(c.tp_sizes)))
    if 1 not in tps:
        raise ValueError(f"scaling.tp_sizes must include 1 (the reference), got {c.tp_sizes}")
    rows, cmds = [], {}
    with ctx.bar(len(tps), "TP sizes") as bar:
        for tp in tps:
            r, cmds[tp] = _one_batch_rows(
                ctx,
                tp,
                c.single_expert_mode,
                c.batch_sizes,
                c.input_lens,
                c.output_len,
                c.timeout_s,
            )
            rows += r
            bar.update(1)
    _emit_scaling(ctx, rows, cmds)


# -- 5. serving -------------------------------------------------------------------------------


def serving_compare_config(ctx: StepContext) -> Any:
    from sglang_ext.perf.serving.compare import CompareConfig

    s = ctx.cfg.serving
    kw: dict[str, Any] = {}
    if s.launcher:
        kw["launcher"] = s.launcher
    return CompareConfig(
        configs=s.configs,
        server_args=shlex.join(model_args(ctx)),
        qps=s.qps,
        num_prompts=s.num_prompts,
        sequence_length=s.sequence_length,
        output_length=s.output_length,
        max_concurrency=s.max_concurrency or None,
        repeats=s.repeats,
        vocab_size=s.vocab_size or None,
        warmup_requests=s.warmup_requests,
        greedy_prompts=s.greedy_prompts,
        ready_timeout_s=s.ready_timeout_s,
        out_dir=str(ctx.step_dir),
        **kw,
    )


def step_serving(ctx: StepContext) -> None:
    from sglang_ext.perf.serving.compare import run_comparison

    cc = serving_compare_config(ctx)
    done = set()
    if ctx.records_path.exists():  # resume inside the step: measured points stay
        for r in read_jsonl(ctx.records_path):
            if r["bench"] == "serve":
                c = r["config"]
                done.add((c["label"], float(c["qps"]), int(c.get("repeat", 0))))
    total = len(cc.configs) * len(cc.qps) * cc.repeats
    with ctx.bar(total, "serving points") as bar:
        bar.update(len(done))

        def on_record(rec: dict[str, Any]) -> None:
            ctx.count += 1

        run_comparison(cc, done=done, on_record=on_record, progress=bar, report=False)


# -- 6. SP+PP ---------------------------------------------------------------------------------


def step_sp_pp(ctx: StepContext) -> None:
    import torch

    from sglang_ext.perf.prefill_bench import sweep

    c = ctx.cfg.sp_pp
    device = c.device if c.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    nprocs = _check_devices(list(c.nprocs)) if device == "cuda" else list(c.nprocs)
    with ctx.bar(len(c.prompt_lens), "SP+PP prompt lengths") as bar:
        for plen in c.prompt_lens:
            before = (
                sum(1 for _ in read_jsonl(ctx.records_path)) if ctx.records_path.exists() else 0
            )
            sweep(
                preset=c.preset,
                num_layers=c.num_layers or None,
                dtype=c.dtype,
                device=device,
                attention_backend="auto",
                prompt_lens=[plen],
                nprocs=nprocs,
                syncs=list(c.syncs),
                chunk_size=c.chunk_size,
                max_new_tokens=c.max_new_tokens,
                repeats=c.repeats,
                bw_gbps=c.bw_gbps,
                latency_us=c.latency_us,
                output=str(ctx.records_path),
            )
            after = sum(1 for _ in read_jsonl(ctx.records_path))
            ctx.count += after - before
            bar.update(1)


# -- 7. per-layer profile ---------------------------------------------------------------------


def step_profile(ctx: StepContext) -> None:
    """``python -m sglang_ext.profile`` per serving configuration, in its own process (it
    activates the patched sglang before importing it, which this process cannot redo)."""
    import importlib.util

    from sglang_ext.perf.serving.compare import parse_server_config
    from sglang_ext.perf.serving.server_process import run_in_group

    try:
        have = importlib.util.find_spec("sglang_ext.profile.__main__") is not None
    except ImportError:
        have = False
    if not have:
        raise StepSkipped("sglang_ext.profile not available")
    configs = dict(parse_server_config(c) for c in ctx.cfg.serving.configs)
    labels = [x for x in ctx.cfg.profile.labels if x in configs]
    if not labels:
        raise ValueError(
            f"profile.labels {list(ctx.cfg.profile.labels)} name no serving config "
            f"(labels: {sorted(configs)})"
        )
    p = ctx.cfg.profile
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in p.options.items()]
    with ctx.bar(len(labels), "profiles") as bar:
        for label in labels:
            out = ctx.step_dir / f"{label}.jsonl"
            out.unlink(missing_ok=True)
            cmd = [
                sys.executable,
                "-m",
                "sglang_ext.profile",
                *model_args(ctx),
                *configs[label],
                "--name",
                label,
                "--output-dir",
                str(ctx.step_dir / label),
                "--output-file",
                str(out),
                "--deadline-s",
                str(p.timeout_s),
                *opts,
            ]
            log_path = ctx.step_dir / f"{label}.log"
            rc = run_in_group(cmd, timeout_s=p.timeout_s + 60, log_path=log_path)
            if rc != 0:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(
                    f"profile of {label} {'timed out' if rc is None else f'exited {rc}'}: "
                    f"{shlex.join(cmd)}\n{tail}"
                )
            for rec in read_jsonl(out):
                rec["config"]["label"] = label
                rec["config"]["command"] = shlex.join(cmd)
                ctx.emit(rec)
            bar.update(1)


@dataclass(frozen=True, slots=True)
class Step:
    """A step of the study."""

    name: str
    title: str
    fn: Callable[[StepContext], None] | None
    records: str = "records.jsonl"


STEP_TABLE: dict[str, Step] = {
    s.name: s
    for s in (
        Step("env", "environment check", step_env),
        Step("bandwidth", "device bandwidth and collectives", step_bandwidth),
        Step("latency", "latency vs sequence length and batch size", step_latency),
        Step("scaling", "TP overhead and scaling efficiency", step_scaling),
        Step("serving", "dp-vs-tp serving comparison", step_serving, records="compare.jsonl"),
        Step("sp_pp", "SP+PP prefill sweep", step_sp_pp),
        Step("profile", "per-layer profile of the served model", step_profile),
        Step("report", "report", None),
    )
}
