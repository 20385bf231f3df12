"""``python -m sglang_ext.study.one_batch``: ``sglang.bench_one_batch`` with our patches in force.

Takes ``sglang_ext.launch_server``'s flags (``--single-expert-mode``, no ``--model-path``
for the embedded default, the CPU defaults) plus bench_one_batch's own
(``--batch-size``, ``--input-len``, ``--output-len``, ``--result-filename``), puts the
patched sglang first on the path as the server does, and runs bench_one_batch.

bench_one_batch draws its synthetic prompts from ids ``[0, 10000)``; a model with a
smaller vocabulary (the embedded default has 1088) fails with an index error.  The ids
are therefore drawn below the model's vocabulary size, in this process and in the TP
ranks bench_one_batch spawns (they import this module as ``__mp_main__``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

__all__ = ["main"]

_VOCAB_ENV = "SGLANG_EXT_ONE_BATCH_VOCAB"


def _bound_synthetic_ids() -> None:
    """Make bench_one_batch's synthetic ids fit the vocabulary named in the environment."""
    vocab = int(os.environ.get(_VOCAB_ENV, "0"))
    if vocab <= 0:
        return
    import numpy as np
    import sglang.bench_one_batch as bob

    def prepare(batch_size: int, input_len: int):
        ids = np.random.randint(0, min(vocab, 10000), (batch_size, input_len), dtype=np.int32)
        params = bob.SamplingParams(temperature=0, max_new_tokens=bob.BenchArgs.output_len)
        reqs = []
        for i in range(batch_size):
            req = bob.Req(
                rid=i, origin_input_text="", origin_input_ids=list(ids[i]), sampling_params=params
            )
            req.prefix_indices = []
            req.fill_ids = req.origin_input_ids
            req.extend_input_len = len(req.fill_ids)
            req.logprob_start_len = len(req.origin_input_ids) - 1
            reqs.append(req)
        return reqs

    bob.prepare_synthetic_inputs_for_latency_test = prepare


def _vocab_size(model_path: str) -> int:
    cfg = json.loads((Path(model_path) / "config.json").read_text())
    return int(cfg.get("vocab_size") or cfg.get("text_config", {}).get("vocab_size", 0))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    import torch

    from sglang_ext import compat
    from sglang_ext.models.tiny import default_model_path
    from sglang_ext.patching import overlay, source
    from sglang_ext.serving.args import flag_value, plan_launch

    cuda = torch.cuda.is_available()
    standin = cuda and compat.need_standin()
    try:
        plan = plan_launch(
            argv, cuda=cuda, sgl_kernel=not standin, default_model_path=default_model_path
        )
        overlay.activate(overlay.ensure_patched_sglang())
    except (ValueError, source.PatchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if standin:
        overlay.activate(Path(compat.standin_path()))
    plan.rank_config.export()  # SGLANG_EXT_CONFIG, read once in every rank
    model_path = flag_value(plan.sglang_argv, "--model-path")
    if model_path and (Path(model_path) / "config.json").exists():
        os.environ[_VOCAB_ENV] = str(_vocab_size(model_path))
    _bound_synthetic_ids()

    import argparse

    import sglang.bench_one_batch as bob

    parser = argparse.ArgumentParser(prog="python -m sglang_ext.study.one_batch")
    bob.ServerArgs.add_cli_args(parser)
    bob.BenchArgs.add_cli_args(parser)
    args = parser.parse_args(plan.sglang_argv)
    server_args = bob.ServerArgs.from_cli_args(args)
    try:
        bob.main(server_args, bob.BenchArgs.from_cli_args(args))
    finally:
        if server_args.tp_size != 1:
            bob.kill_process_tree(os.getpid(), include_parent=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
elif __name__ == "__mp_main__":  # a TP rank spawned by bench_one_batch
    _bound_synthetic_ids()
