"""``python -m sglang_ext.profile``: profile the served model's steps on every rank.

Takes sglang's server flags (``--model-path``, ``--load-format dummy``, ``--tp-size``,
``--dp-size --enable-dp-attention``, ``--single-expert-mode {tp,dp}``, ...) and the flags of
:class:`~sglang_ext.profile.config.ProfileArgs`. The command line is planned like
``launch_server``'s (CPU flags, the embedded default model, the sgl_kernel stand-in on a
CUDA machine without sgl-kernel), the patched sglang is activated, and one process per
rank runs :func:`~sglang_ext.profile.rank.rank_main` under one deadline. The parent merges
the ranks' summaries into one record (appended to ``--output-file``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sglang_ext.cli import add_dataclass_args, dataclass_from_args

from .config import ProfileArgs

__all__ = ["Layout", "main", "plan", "run_profile", "build_record"]

logger = logging.getLogger(__name__)


@dataclass(kw_only=True, slots=True)
class Layout:
    """The parallel layout read from the planned sglang command line (sglang's defaults)."""

    tp_size: int
    """Ranks (``--tp-size``)."""
    dp_size: int
    """``--dp-size``."""
    enable_dp_attention: bool
    """``--enable-dp-attention``."""
    model_path: str
    """``--model-path``."""


def plan(argv: list[str]) -> tuple[ProfileArgs, list[str], Layout, str | None, list[str]]:
    """(our args, sglang argv, layout, single-expert mode, notes); activates the patched
    sglang for the ranks (the parent itself never imports sglang: that is seconds saved)."""
    import torch

    from sglang_ext import compat
    from sglang_ext.models.tiny import default_model_path
    from sglang_ext.patching import overlay
    from sglang_ext.serving.args import flag_value, plan_launch

    p = argparse.ArgumentParser(add_help=False)
    add_dataclass_args(p, ProfileArgs)
    ns, rest = p.parse_known_args(argv)
    pargs = dataclass_from_args(ProfileArgs, ns)
    cuda = torch.cuda.is_available()
    standin = cuda and compat.need_standin()
    lp = plan_launch(rest, cuda=cuda, sgl_kernel=not standin, default_model_path=default_model_path)
    sg = lp.sglang_argv
    graphs = flag_value(sg, "--device") != "cpu" and flag_value(sg, "--disable-cuda-graph") is None
    if pargs.profile_graph and not (cuda and graphs and pargs.phase == "decode"):
        raise ValueError(
            "--profile-graph profiles sglang's CUDA-graph replay: it needs a GPU, decode "
            "(--phase decode) and CUDA graphs on (drop --disable-cuda-graph)"
        )
    if cuda and graphs and pargs.phase == "decode":
        lp.notes.append(
            "CUDA graphs time the served decode step (graph_step_wall_ms); the profiled steps "
            + ("replay them (no per-layer numbers)" if pargs.profile_graph else "run eagerly")
        )

    def num(flag: str) -> int:
        v = flag_value(sg, flag)
        if v in (None, ""):
            return 1
        if not v.isdigit() or int(v) < 1:
            raise ValueError(f"{flag} {v!r}: give a positive integer")
        return int(v)

    layout = Layout(
        tp_size=num("--tp-size"),
        dp_size=num("--dp-size"),
        enable_dp_attention=flag_value(sg, "--enable-dp-attention") is not None,
        model_path=flag_value(sg, "--model-path"),
    )
    if layout.dp_size > 1 and not layout.enable_dp_attention:
        raise ValueError(
            f"--dp-size {layout.dp_size} without --enable-dp-attention is {layout.dp_size} "
            f"separate replicas: profile one (drop --dp-size) or add --enable-dp-attention"
        )
    if num("--pp-size") != 1:
        raise ValueError("--pp-size: the profiler runs pipeline size 1 only")
    if not (Path(layout.model_path) / "config.json").is_file():
        raise ValueError(
            f"--model-path {layout.model_path}: no config.json there; give a local model "
            f'folder (e.g. a preset: python -c "from sglang_ext.presets import materialize; '
            f"materialize('qwen3-30b-a3b-1e', '/tmp/m30')\")"
        )
    overlay.activate(overlay.ensure_patched_sglang())
    if standin:
        overlay.activate(Path(compat.standin_path()))
    lp.rank_config.export()  # SGLANG_EXT_CONFIG, read once in every rank
    return pargs, sg, layout, lp.single_expert_mode, lp.notes


def run_profile(pargs: ProfileArgs, sglang_argv: list[str], layout: Layout) -> list[dict[str, Any]]:
    """Run every rank; return their summaries (rank order), per-layer comm/idle merged."""
    from sglang_ext.perf.dist_env import run_spawned

    from .analysis import merge_comm
    from .rank import rank_main

    with tempfile.TemporaryDirectory(prefix="sglang_ext_profile_") as work:
        run_spawned(
            rank_main, layout.tp_size, sglang_argv, pargs, work, deadline_s=pargs.deadline_s
        )
        ranks = [json.loads(Path(work, f"rank{r}.json").read_text()) for r in range(layout.tp_size)]
    merge_comm(ranks)
    return ranks


def _model_facts(model_path: str) -> dict[str, Any]:
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    return {
        k: cfg.get(k) for k in ("hidden_size", "num_hidden_layers", "vocab_size", "num_experts")
    }


_SPLIT = ("compute_us", "comm_us", "idle_us")
_GPU_KEYS = ("per_layer_host_us", "gpu_kernels_per_step", "gpu_graph_kernels_per_step",
             "gpu_busy_us", "gpu_unattributed_kernels")  # fmt: skip


def _graph_reference(r0: dict[str, Any]) -> dict[str, Any]:
    """The unprofiled CUDA-graph replay step beside the eager ones (None without graphs)."""
    if r0.get("graph_step_s") is None:
        return {"graph_step_wall_ms": None}
    return {
        "graph_step_wall_ms": statistics.median(r0["graph_step_s"]) * 1e3,
        "graph_steps_replayed": r0["graph_steps"],
        "profiled_steps_replayed": r0["profiled_graph_steps"],
        "tokens_equal_graph_replay": r0["graph_tokens"] == r0["tokens"],
    }


def summary_lines(rec: dict[str, Any], top: int = 8) -> list[str]:
    """What the command prints: step times, per-layer sum against the step, top costs."""
    m = rec["metrics"]
    ref = m.get("graph_step_wall_ms")
    lines = [
        f"step {m['step_us'] / 1e3:.2f} ms (profiled), unprofiled {m['step_wall_ms']:.2f} ms, "
        f"overhead {m['overhead_pct']:.0f}%"
        + (f"; served (CUDA-graph replay, unprofiled) {ref:.2f} ms" if ref is not None else "")
    ]
    if m["per_layer_us"] is None:
        lines.append(f"per layer: none: {m.get('per_layer_reason')}")
    else:
        lines.append(
            f"per-layer sum {m['per_layer_sum_us'] / 1e3:.2f} ms = "
            f"{m['per_layer_sum_us'] / m['step_us']:.0%} of the step over "
            f"{len(m['per_layer_us'])} layers; layer min/max "
            f"{min(m['per_layer_us']):.0f}/{max(m['per_layer_us']):.0f} us"
        )
    if "gpu_kernels_per_step" in m:
        lines.append(
            f"GPU: {m['gpu_kernels_per_step']:.0f} kernels/step "
            f"({m['gpu_graph_kernels_per_step']:.0f} from graph launches), busy "
            f"{m['gpu_busy_us'] / 1e3:.2f} ms/step"
        )
    lines.append("top: " + "; ".join(
        f"{b['name']} {b['us']:.0f} us ({b['share_of_step']:.0%})" for b in m["bottlenecks"][:top]
    ))  # fmt: skip
    comm = ", ".join(f"{k} x{v['count']} {v['bytes']} B" for k, v in m["comm"].items())
    lines.append(f"comm per step: {comm or 'none'}; tokens equal: {m['tokens_equal_unprofiled']}")
    return lines


def build_record(
    pargs: ProfileArgs, mode: str | None, ranks: list[dict[str, Any]]
) -> dict[str, Any]:
    """One record: rank 0's numbers as the headline, every rank's under ``metrics.ranks``."""
    from sglang_ext.perf.records import make_record

    from .analysis import bottlenecks, hta_summary, per_step_comm
    from .analytic import expected_collectives

    r0 = ranks[0]
    srv = r0["server"]
    facts = _model_facts(srv["model_path"])
    n = len(r0["steps_us"])
    base, prof = statistics.median(r0["step_s"]), statistics.median(r0["profiled_step_s"])
    split = r0.get("per_layer_gpu") or r0.get("per_layer_cpu") or {}
    analytic = expected_collectives(
        hidden=facts["hidden_size"],
        layers=facts["num_hidden_layers"],
        vocab=facts["vocab_size"],
        tp=srv["tp_size"],
        batch=pargs.batch_size,
        input_len=pargs.input_len,
        phase=pargs.phase,
        dtype_size=srv["dtype_size"],
        dp_attention=srv["enable_dp_attention"],
        dp_size=srv["dp_size"],
    )
    per_rank = []
    for rk in ranks:
        s = rk.get("per_layer_gpu") or rk.get("per_layer_cpu") or {}
        comm = [c for c in rk["calls"] if c["step"] is not None]
        comm_us = sum(c.get("transfer_us", c["dur_us"]) for c in comm) / n
        wait_us = sum(c.get("wait_us", 0.0) for c in comm) / n
        ta = rk["trace_analysis"]["breakdown"]
        gpu = "per_layer_gpu" in rk
        per_rank.append(
            {
                "rank": rk["rank"],
                "step_us": rk["step_us"],
                "per_layer_us": rk["per_layer_us"],
                **{f"per_layer_{k}": s.get(k) for k in _SPLIT},
                "comm_us": comm_us,
                "idle_us": wait_us,
                # gloo collectives block the rank (all exposed); on the GPU the kernels tell
                "exposed_comm_us": ta["exposed_comm_us"] / n if gpu else comm_us + wait_us,
                "tokens_equal_unprofiled": rk["tokens"] == rk["profiled_tokens"],
                "trace": rk["trace"],
            }
        )
    metrics = {
        "step_us": r0["step_us"],
        "per_layer_us": r0["per_layer_us"],
        **{f"per_layer_{k}": split.get(k) for k in _SPLIT},
        **({"per_layer_reason": r0["per_layer_reason"]} if r0.get("per_layer_reason") else {}),
        "per_layer_sum_us": None if r0["per_layer_us"] is None else sum(r0["per_layer_us"]),
        **{k: r0[k] for k in _GPU_KEYS if k in r0},
        "ops_us": r0["ops_us"],
        "outside_us": r0["outside_us"],
        "comm": per_step_comm(r0["calls"], n),
        "comm_analytic": analytic,
        "step_wall_ms": base * 1e3,
        "profiled_step_wall_ms": prof * 1e3,
        "overhead_pct": (prof / base - 1) * 100,
        **_graph_reference(r0),
        "tokens_equal_unprofiled": all(p["tokens_equal_unprofiled"] for p in per_rank),
        "tokens": r0["profiled_tokens"],
        "bottlenecks": bottlenecks(r0),
        "weight_bytes_rank0": r0["weight_bytes"],
        "ranks": per_rank,
    }
    if srv["device"] == "cuda":
        metrics["hta"] = hta_summary(pargs.output_dir)
    config = {
        **asdict(pargs),
        **{k: v for k, v in srv.items() if k != "dtype_size"},
        "single_expert_mode": mode,
        **{f"model_{k}": v for k, v in facts.items()},
    }
    return make_record("profile_model", config, metrics)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="[sglang-ext] %(message)s")
    if "-h" in argv or "--help" in argv:
        p = argparse.ArgumentParser(
            prog="python -m sglang_ext.profile",
            description=__doc__ + "\nAny other flag goes to sglang's ServerArgs.",
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_dataclass_args(p, ProfileArgs)
        p.print_help()
        return 0
    from sglang_ext.patching import source
    from sglang_ext.perf.records import append_jsonl

    try:
        pargs, sg, layout, mode, notes = plan(argv)
    except (ValueError, source.PatchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for note in notes:
        logger.info(note)
    ranks = run_profile(pargs, sg, layout)
    rec = build_record(pargs, mode, ranks)
    append_jsonl(pargs.output_file, rec)
    for line in summary_lines(rec):
        print(line)
    print(f"record -> {pargs.output_file}")
    return 0
