"""Runs the CPU interpreter cases in a fresh process (TRITON_INTERPRET=1 set before Triton).

Usage: python _interpret_worker.py OUT.json -> {case_id: null | "failure message"}
"""

import json
import os
import sys

os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, os.path.dirname(__file__))

import torch  # noqa: E402
from _interpret_patch_once import install  # noqa: E402
from _mlp_cases import (  # noqa: E402
    CPU_CONFIGS,
    CPU_HIDDEN,
    CPU_INTER,
    case_ids,
    check_against_ref,
    make_inputs,
)

from sglang_ext.kernels.experimental import fused_mlp_onelaunch as v4  # noqa: E402
from sglang_ext.kernels.fused_mlp import fused_swiglu_mlp  # noqa: E402

install()


def main(path: str) -> None:
    results = {}
    seed = 0
    sync = v4.sync_buffer("cpu")
    for cid in case_ids():
        dtype_name, cfg_name, m = cid.split("-")
        dtype, m = getattr(torch, dtype_name), int(m[1:])
        msgs = []
        for rep in range(2):  # repeated: counters/workspace must come back clean for the next call
            seed += 1
            x, w13, w2 = make_inputs(m, CPU_HIDDEN, CPU_INTER, dtype, seed=seed)
            out = torch.full((m, CPU_HIDDEN), float("nan"), dtype=dtype)  # poisoned
            cfg = CPU_CONFIGS[cfg_name]
            try:
                if cfg is not None and cfg.one_launch:
                    # v4 must never read a partial it did not write (poisoned), and its last
                    # program must reset the counters for the next call (one buffer, reused)
                    v4.fused_swiglu_mlp_one_launch(
                        x, w13, w2, out=out, config=cfg, sync=sync, poison_partials=True
                    )
                else:
                    fused_swiglu_mlp(x, w13, w2, out=out, config=cfg)
                msg = check_against_ref(out, x, w13, w2)
                if sync.any():
                    msg = (msg or "") + f" counters not reset: {sync.tolist()}"
            except Exception as e:  # reported per case, not as a crash of all
                msg = f"{type(e).__name__}: {e}"
            if msg:
                msgs.append(f"call {rep}: {msg}")
        results[cid] = "; ".join(msgs) or None
    with open(path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
