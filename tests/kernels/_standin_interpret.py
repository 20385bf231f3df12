"""Runs ``_standin_interpret_worker`` once per pytest process and hands out its results.

The interpreter must be switched on before any Triton kernel is decorated, and other tests
may import our kernels first, so the cases run in one child process; the five stand-in
``test_*_interpret.py`` files share its results (``tests/conftest.py`` schedules them as one
xdist scope, so the child runs once per suite, not once per worker).
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from _standin_cases import CPU_CASES

HERE = Path(__file__).parent
ROOT = HERE.parents[1]


def case_ids(prefix: str) -> list[str]:
    return [c for c in CPU_CASES if c.split("-")[0] == prefix]


@functools.cache
def _results() -> dict[str, str | None]:
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "results.json"
        proc = subprocess.run(
            [sys.executable, str(HERE / "_standin_interpret_worker.py"), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode != 0 or not out.exists():
            return {"__crash__": f"worker crashed (rc={proc.returncode}):\n{proc.stderr[-4000:]}"}
        return json.loads(out.read_text())


def check(case: str) -> None:
    res = _results()
    if "__crash__" in res:
        pytest.fail(res["__crash__"])
    assert case in res, f"worker did not run {case}"
    assert res[case] is None, f"{case}:\n{res[case]}"
