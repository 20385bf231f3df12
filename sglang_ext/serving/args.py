"""Command-line handling for ``sglang_ext.launch_server``, kept free of sglang imports.

We add ``--single-expert-mode {dp,tp}`` (env ``SINGLE_EXPERT_MODE`` too) and, when no
``--model-path`` is given, the embedded default model with the flags its machine
needs. Everything else goes to sglang's own ``ServerArgs`` parser untouched. The plan
carries the ranks' :class:`~sglang_ext.serving.config.SingleExpertConfig`, which the
launcher exports once.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from sglang_ext.serving.config import SingleExpertConfig
from sglang_ext.serving.layout import moe_ep_size

__all__ = ["LaunchPlan", "flag_value", "http_address", "plan_launch", "num_experts_of"]

DEFAULT_HOST = "127.0.0.1"  # sglang 0.4.7's ServerArgs defaults
DEFAULT_PORT = 30000

# flags CPU serving needs (sglang 0.4.7 on CPU: intel_amx attention needs IPEX; an unset
# --max-total-tokens sized a ~19 GB KV cache on a 24 GB machine)
CPU_DEFAULTS = {
    "--attention-backend": "torch_native",
    "--max-total-tokens": "8192",
}
# flags for a CUDA machine without sgl-kernel (fa3 and flashinfer sampling need it)
NO_SGL_KERNEL_DEFAULTS = {
    "--attention-backend": "triton",
    "--sampling-backend": "pytorch",
    "--disable-custom-all-reduce": None,
}


def flag_value(argv: list[str], flag: str) -> str | None:
    """The value of ``flag`` in argv (``--f v`` or ``--f=v``); '' for a bare switch."""
    for i, a in enumerate(argv):
        if a == flag:
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            return "" if nxt.startswith("--") else nxt
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def http_address(argv: list[str]) -> tuple[str, int]:
    """``(--host, --port)`` as sglang will read them; ValueError for a bad port."""
    host = flag_value(argv, "--host") or DEFAULT_HOST
    raw = flag_value(argv, "--port")
    if raw is None:
        return host, DEFAULT_PORT
    try:
        port = int(raw)
    except ValueError:
        raise ValueError(f"--port must be a number from 1 to 65535, got {raw!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"--port must be a number from 1 to 65535, got {port}")
    return host, port


def _add_defaults(argv: list[str], defaults: dict[str, str | None]) -> list[str]:
    out = list(argv)
    for flag, value in defaults.items():
        if flag_value(out, flag) is None:
            out += [flag] if value is None else [flag, value]
    return out


def num_experts_of(model_path: str) -> int | None:
    """Routed experts per layer from a local config.json (None if not an MoE / not local)."""
    cfg = Path(model_path) / "config.json"
    if not cfg.is_file():
        return None
    data = json.loads(cfg.read_text())
    for key in ("num_experts", "num_local_experts", "n_routed_experts"):
        if key in data:
            return int(data[key])
    return None


@dataclass(kw_only=True, slots=True)
class LaunchPlan:
    """What launch_server will run."""

    sglang_argv: list[str]
    """Arguments handed to sglang's ServerArgs parser."""
    single_expert_mode: str | None
    """'tp', 'dp' or None (``rank_config.mode``)."""
    rank_config: SingleExpertConfig
    """What every rank reads (``SingleExpertConfig.export`` hands it to them)."""
    default_model: bool
    """True when serving the embedded default."""
    notes: list[str] = field(default_factory=list)
    """What was added or decided, for the log."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--single-expert-mode", choices=None, default=None)
    return p


def plan_launch(
    argv: list[str],
    *,
    cuda: bool,
    sgl_kernel: bool,
    default_model_path,
) -> LaunchPlan:
    """Turn our command line into sglang's; raise ValueError for bad input.

    ``default_model_path`` is a callable returning the embedded default's directory
    (called only when no --model-path is given).
    """
    ours, rest = _parser().parse_known_args(argv)
    config = SingleExpertConfig.from_user_env(mode_flag=ours.single_expert_mode)
    mode = config.mode
    notes: list[str] = []
    default = flag_value(rest, "--model-path") is None
    if default:
        path = str(default_model_path())
        rest = ["--model-path", path] + rest
        notes.append(f"no --model-path: serving the embedded default {path}")
        if flag_value(rest, "--dtype") is None:
            rest += ["--dtype", "float32"]  # the default is float32; keep it exact
    device = flag_value(rest, "--device")
    if device is None and not cuda:
        rest += ["--device", "cpu"]
        device = "cpu"
    if device == "cpu":
        rest = _add_defaults(rest, CPU_DEFAULTS)
    elif cuda and not sgl_kernel:
        rest = _add_defaults(rest, NO_SGL_KERNEL_DEFAULTS)
        notes.append("sgl-kernel is absent: using sglang-ext's torch/Triton stand-in")
    if mode is not None:
        experts = num_experts_of(flag_value(rest, "--model-path"))
        if experts is not None and experts != 1:
            raise ValueError(
                f"--single-expert-mode {mode} needs a model with one expert, but "
                f"{flag_value(rest, '--model-path')} has {experts}: prune it first with "
                f"`python -m sglang_ext.prune SRC DST --expert most-used`, then serve DST"
            )
    if mode == "dp":
        rest, layout_notes = _dp_layout(rest)
        notes += layout_notes
    return LaunchPlan(
        sglang_argv=rest,
        single_expert_mode=mode,
        rank_config=config,
        default_model=default,
        notes=notes,
    )


def _int_flag(argv: list[str], flag: str, default: int) -> int:
    v = flag_value(argv, flag)
    return default if v in (None, "") else int(v)


def _set_flag(argv: list[str], flag: str, value: str) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a == flag:
            i += 2
            continue
        if a.startswith(flag + "="):
            i += 1
            continue
        out.append(a)
        i += 1
    return out + [flag, value]


def _drop_switch(argv: list[str], flag: str) -> list[str]:
    return [a for a in argv if a != flag]


def _dp_layout(argv: list[str]) -> tuple[list[str], list[str]]:
    """The expert-parallel layout for --single-expert-mode dp.

    The expert is replicated over sglang-ext's MoE EP group, which must span the TP
    group. sglang 0.4.7 overwrites --ep-size with --tp-size under --enable-ep-moe
    (server_args.py), so the original fork's `--tp-size 4 --dp-size 2 --enable-ep-moe
    --ep-size 8` meant two DP replicas of TP4/EP4. What it intended, EP over all 8
    ranks, is attention TP4 x DP2 with MoE layers spanning the 8 ranks: `--tp-size 8
    --dp-size 2 --enable-dp-attention --ep-size 8`, which this rewrites it to.
    """
    notes: list[str] = []
    tp = _int_flag(argv, "--tp-size", 1)
    dp = _int_flag(argv, "--dp-size", 1)
    ep = _int_flag(argv, "--ep-size", tp)
    if flag_value(argv, "--enable-ep-moe") is not None:
        argv = _drop_switch(argv, "--enable-ep-moe")
        notes.append("--enable-ep-moe dropped: SingleExpertMoE serves the one expert")
    if ep != tp and ep == tp * dp and flag_value(argv, "--enable-dp-attention") is None:
        argv = _set_flag(argv, "--tp-size", str(ep))
        argv += ["--enable-dp-attention"]
        notes.append(
            f"--tp-size {tp} --dp-size {dp} --ep-size {ep}: EP over all {ep} ranks means "
            f"attention TP{tp} x DP{dp} with the MoE over {ep} ranks; serving "
            f"--tp-size {ep} --dp-size {dp} --enable-dp-attention --ep-size {ep}"
        )
        tp = ep
    try:
        ep = moe_ep_size(tp_size=tp, ep_size=ep, single_expert_dp=True)
    except ValueError as e:
        raise ValueError(
            f"{e}; or, for EP across data-parallel attention replicas, --ep-size = "
            f"--tp-size x --dp-size ({tp * dp}) without --enable-dp-attention"
        ) from None
    argv = _set_flag(argv, "--ep-size", str(ep))
    return argv, notes
