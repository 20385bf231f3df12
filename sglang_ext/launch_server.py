"""``python -m sglang_ext.launch_server``: sglang 0.4.7's server with our patches in force.

Takes every ``sglang.launch_server`` flag plus ``--single-expert-mode {dp,tp}``.
With no ``--model-path`` it serves the embedded default (a one-expert Qwen3-MoE
built locally). The patch series is in force in every server process: either the
installed sglang carries it, or a patched copy is put first on ``sys.path`` and
``PYTHONPATH`` before sglang is imported, which the spawned ranks inherit.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

__all__ = ["main"]

logger = logging.getLogger("sglang_ext.launch_server")


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
    logging.basicConfig(level=logging.INFO, format="[sglang-ext] %(message)s")
    if "-h" in argv or "--help" in argv:
        print(
            "python -m sglang_ext.launch_server [--single-expert-mode {dp,tp}] "
            "[sglang.launch_server flags]\n  --single-expert-mode  serve a one-expert MoE "
            "with the expert sharded over TP ranks (tp) or replicated with tokens split "
            "between ranks (dp); env SINGLE_EXPERT_MODE works too.\n  Without "
            "--model-path the embedded default model is served.\nsglang's flags follow.\n"
        )
    import torch

    from sglang_ext import compat
    from sglang_ext.models.tiny import default_model_path
    from sglang_ext.patching import overlay, source
    from sglang_ext.serving.args import plan_launch

    cuda = torch.cuda.is_available()
    standin = cuda and compat.need_standin()
    try:
        plan = plan_launch(
            argv,
            cuda=cuda,
            sgl_kernel=not standin,
            default_model_path=default_model_path,
        )
        overlay.activate(overlay.ensure_patched_sglang())
    except (ValueError, source.PatchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if standin:
        overlay.activate(Path(compat.standin_path()))
    for note in plan.notes:
        logger.info(note)
    if plan.single_expert_mode:
        os.environ["SINGLE_EXPERT_MODE"] = plan.single_expert_mode  # read in every rank

    from sglang.srt.entrypoints.http_server import launch_server
    from sglang.srt.server_args import prepare_server_args
    from sglang.srt.utils import kill_process_tree

    server_args = prepare_server_args(plan.sglang_argv)
    try:
        launch_server(server_args, launch_callback=lambda: _announce(server_args, plan.single_expert_mode))
    finally:
        kill_process_tree(os.getpid(), include_parent=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
