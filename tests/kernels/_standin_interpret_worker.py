"""Runs the stand-in kernel cases under TRITON_INTERPRET=1 in a fresh process.

Usage: python _standin_interpret_worker.py OUT.json -> {case_id: null | "failure message"}
"""

import json
import os
import sys
import traceback

os.environ["TRITON_INTERPRET"] = "1"
sys.path.insert(0, os.path.dirname(__file__))

from _interpret_patch_once import install  # noqa: E402
from _standin_cases import CPU_CASES  # noqa: E402

install()


def main(path: str) -> None:
    results = {}
    for cid, fn in CPU_CASES.items():
        try:
            fn("cpu")
            results[cid] = None
        except Exception:  # reported per case
            results[cid] = traceback.format_exc(limit=4)
    with open(path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main(sys.argv[1])
