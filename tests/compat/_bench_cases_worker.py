"""Child process (TRITON_INTERPRET=1): every case of the stand-in bench, both impls on CPU.

Writes {case: null | message} to argv[1].  The bench's inputs are built twice from the same
seed; the Triton and torch impls must then leave the same outputs (each is tested against
float64 elsewhere; this checks the bench times the same work for both).
"""

import json
import os
import sys
import traceback

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402

from sglang_ext.compat.bench import StandinBenchConfig, _cases  # noqa: E402


def _state(a: dict) -> dict:
    return {k: v.clone() for k, v in a.items() if isinstance(v, torch.Tensor)}


def main(path: str) -> None:
    cfg = StandinBenchConfig(tokens=[3], hidden=[2048], dtype="float32")
    results = {}
    for case in _cases(cfg, dev="cpu"):
        name = f"{case.op}-t{case.tokens}-h{case.hidden}"
        try:
            outs = {}
            for impl, fn in case.impls.items():
                torch.manual_seed(0)
                a = case.make()
                fn(a)
                outs[impl] = _state(a)
            for k, v in outs["torch"].items():
                if (
                    case.op == "moe_align_block_size" and k == "s"
                ):  # order within an expert may differ
                    v, w = v.sort().values, outs["triton"][k].sort().values
                else:
                    w = outs["triton"][k]
                torch.testing.assert_close(
                    w, v, rtol=1e-5, atol=1e-5, msg=lambda m, k=k: f"{k}: {m}"
                )
            results[name] = None
        except Exception:
            results[name] = traceback.format_exc(limit=4)
    with open(path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
