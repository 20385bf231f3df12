"""``python -m sglang_ext.launch_server``: sglang 0.4.7's server with our patches in force.

Takes every ``sglang.launch_server`` flag plus ``--single-expert-mode {dp,tp}``.
With no ``--model-path`` it serves the embedded default (a one-expert Qwen3-MoE
built locally). The patch series is in force in every server process: either the
installed sglang carries it, or a patched copy is put first on ``sys.path`` and
``PYTHONPATH`` before sglang is imported, which the spawned ranks inherit.

It checks its flags and the model first (bad input exits 2 whatever holds the port), then
binds its HTTP port before starting anything (a port in use fails at once, naming it), and
ends within seconds when any server process dies (naming it), exits 0 after SIGTERM
once the server has shut down, and leaves no process behind (``serving/lifecycle.py``,
``serving/sglang_hooks.py``). Known noise is dropped from the log (``serving/quiet.py``).
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from sglang_ext.serving import quiet

__all__ = ["main"]

logger = logging.getLogger("sglang_ext.launch_server")

if __name__ == "__mp_main__":  # multiprocessing's spawn re-imports us first in every child
    quiet.install()

USAGE = """\
usage: python -m sglang_ext.launch_server [--single-expert-mode {tp,dp}] [sglang flags]

sglang 0.4.7's server (sglang.launch_server) with sglang-ext's patches in force.

sglang-ext flags:
  --single-expert-mode {tp,dp}
                        serve a one-expert MoE: tp shards the expert over the TP ranks,
                        dp replicates it and splits the tokens between the ranks
                        (env SINGLE_EXPERT_MODE works too; the flag wins;
                        SINGLE_EXPERT_DP_ROUTING=random|round_robin picks dp's split)
  no --model-path       serve the embedded default one-expert model (built on first use
                        under $SGLANG_EXT_CACHE, default ~/.cache/sglang_ext)
  on a machine without CUDA, --device cpu --attention-backend torch_native
  --max-total-tokens 8192 are added unless given.
"""


def _help_text() -> str:
    """Our flags, then sglang's (from its own parser; nothing is built or written)."""
    import argparse

    try:
        from sglang.srt.server_args import ServerArgs

        parser = argparse.ArgumentParser(prog="sglang.launch_server", add_help=False)
        ServerArgs.add_cli_args(parser)
        theirs = parser.format_help()
    except Exception as e:  # noqa: BLE001 - an sglang that cannot import still gets our help
        theirs = f"(run `python -m sglang.launch_server --help`; importing it here failed: {e!r})"
    return f"{USAGE}\nsglang's flags:\n{theirs}"


def _announce(server_args, mode: str | None) -> None:
    url = f"http://{server_args.host}:{server_args.port}"
    print(
        f"\nsglang-ext server ready at {url}  (model {server_args.model_path}, "
        f"tp {server_args.tp_size}, single-expert mode {mode or 'off'})\n"
        f"  try: curl {url}/generate -H 'Content-Type: application/json' "
        f"""-d '{{"text": "Hello", "sampling_params": {{"max_new_tokens": 16, "temperature": 0}}}}'\n""",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from sglang_ext.net import PortInUseError
    from sglang_ext.serving.args import flag_value, http_address
    from sglang_ext.serving.lifecycle import Supervisor, bind_http

    quiet.install(eplb=flag_value(argv, "--enable-eplb") is not None)
    quiet.use_our_prefix()
    if "-h" in argv or "--help" in argv:
        print(_help_text())
        return 0
    try:
        address = http_address(argv)
        plan, cuda, standin = _plan(argv)
    except ValueError as e:  # bad input first: a held port must not hide it
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        sock = bind_http(*address)
    except PortInUseError as e:
        print(f"error: {e.strerror}", file=sys.stderr)
        return 1
    supervisor = Supervisor()
    supervisor.handle_signals()
    try:
        rc = _launch(plan, cuda, standin, sock, supervisor)
    except SystemExit as e:  # sglang's own argument errors (argparse) and the like
        supervisor.exit(e.code if isinstance(e.code, int) else 1, "exiting")
    except BaseException as e:  # noqa: BLE001 - any failure ends every process we started
        logger.exception("launch failed")
        supervisor.exit(1, f"launch failed: {e!r}")
    sock.close()
    return rc


def _plan(argv: list[str]):
    """Our flags and the model checked, sglang's command line planned; ValueError if bad.
    Returns (plan, CUDA available, the sgl_kernel stand-in needed)."""
    import torch

    from sglang_ext import compat
    from sglang_ext.models.tiny import default_model_path
    from sglang_ext.serving.args import plan_launch

    cuda = torch.cuda.is_available()
    standin = cuda and compat.need_standin()
    plan = plan_launch(
        argv, cuda=cuda, sgl_kernel=not standin, default_model_path=default_model_path
    )
    return plan, cuda, standin


def _launch(plan, cuda: bool, standin: bool, sock, supervisor) -> int:
    """Patch, start sglang; returns only for bad input (2), never once serving."""
    from sglang_ext import compat
    from sglang_ext.patching import overlay, source

    try:
        overlay.activate(overlay.ensure_patched_sglang())
    except source.PatchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if standin:
        overlay.activate(Path(compat.standin_path()))
    for note in plan.notes:
        logger.info(note)
    plan.rank_config.export()  # SGLANG_EXT_CONFIG: what every rank reads (serving/config.py)

    from sglang.srt.entrypoints.http_server import launch_server
    from sglang.srt.server_args import prepare_server_args

    from sglang_ext.serving.sglang_hooks import SglangHooks

    server_args = prepare_server_args(plan.sglang_argv)
    ready = threading.Event()

    def on_ready() -> None:
        if cuda:  # compile the Triton variants of the first prefills before saying ready
            from sglang_ext.serving.jit_warmup import jit_warmup

            try:
                jit_warmup(server_args.url(), api_key=server_args.api_key)
            except RuntimeError as e:
                supervisor.exit(1, str(e))
        ready.set()
        _announce(server_args, plan.single_expert_mode)

    SglangHooks(supervisor, sock, ready).install()
    supervisor.watch()
    launch_server(server_args, launch_callback=on_ready)
    supervisor.exit(1, "sglang's launch_server returned without serving")
    return 1


if __name__ == "__main__":
    sys.exit(main())
