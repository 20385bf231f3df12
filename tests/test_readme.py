"""Every command in README.md is either run here, as written, or excluded with a reason.

Commands are read from README.md when the tests run: the lines of its ```bash blocks
(continuations joined, comments dropped) and the inline `code` spans that start with a
command word.  A command that is in neither RUN nor EXCLUDED fails the test, so a new
README line has to be classified; an entry the README no longer has fails too.

RUN commands go through ``bash -c`` exactly as written, with this Python's bin folder first
on PATH (an activated venv) and a working folder that mirrors the repository root, whose
``bench/`` is a copy: records and reports the commands write land there, not in the repo.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CMD_WORDS = r"(python3?|torchrun|bash|ruff|pre-commit|curl|pip|\.venv/bin/\S+) "

# Run as written; each must exit 0 within its timeout (seconds, generous for 2 busy cores).
RUN = {
    "python -m sglang_ext.patch status": 120,  # reads the installed sglang, changes nothing
    # writes /tmp/m235 as the README says (idempotent for the same preset)
    'python -c "from sglang_ext.presets import materialize; '
    "materialize('qwen3-235b-a22b-1e', '/tmp/m235')\"": 120,
    "python bench/scaling.py --help": 120,
    "python bench/env_check.py": 180,
    "python bench/report.py bench/results/h100/*.jsonl --out-dir bench/results/h100/report": 180,
    "ruff check sglang_ext bench tests": 120,
    "python -m sglang_ext.study check": 120,  # versions, devices, patch status: read-only
}

_SUMMARY = "syntax summary with placeholders, not a command"
_GPU8 = "needs 8 GPUs and a real checkpoint"
EXCLUDED = {
    "bash bench/profile_h200.sh": "the per-layer GPU profile (CUDA only)",
    "python bench/bench_decode_attention.py": "the decode-attention GPU bench (CUDA only; its "
    "pieces run under the Triton interpreter in tests/perf/kernel_bench)",
    "python bench/bench_decode_attention.py --fused": "the same bench's one-launch mode (CUDA "
    "only; bench_fused_point runs under the interpreter in tests/perf/kernel_bench)",
    "python bench/bench_gemv.py": "the small-M linear GPU bench (CUDA only; its pieces run "
    "under the Triton interpreter in tests/perf/kernel_bench)",
    # install + serve / install + the whole suite: this suite is the second one
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e . && "
    ".venv/bin/python -m sglang_ext.launch_server --single-expert-mode tp": "installs and "
    "serves until stopped; the server is tested in tests/e2e",
    'python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[dev]" && '
    ".venv/bin/python -m pytest": "installs and runs this whole suite",
    "python -m pytest": "the whole suite (this test is part of it)",
    'pip install -e ".[cuda]"': "CUDA install, network",
    "curl http://127.0.0.1:30000/generate -H 'Content-Type: application/json' -d "
    '\'{"text": "Hello", "sampling_params": {"max_new_tokens": 16, "temperature": 0}}\'': "needs the server on :30000; /generate is tested in tests/e2e",
    "python -m sglang_ext.patch apply --target python/sglang": "needs an sglang git checkout "
    "at python/sglang; apply/revert are tested on copies in tests/patching",
    "python -m sglang_ext.patch revert": "writes the installed sglang; tested in tests/patching",
    "python -m sglang_ext.patch apply": "writes the installed sglang; tested in tests/patching",
    "python -m sglang_ext.prune /models/Qwen3-30B-A3B /models/Qwen3-30B-A3B-1e --expert "
    "most-used": "needs the real 30B checkpoint; the pruner is tested in tests/prune",
    "python -m sglang_ext.launch_server --model-path /models/Qwen3-30B-A3B-1e --tp-size 8 "
    "--single-expert-mode tp": _GPU8,
    "python -m sglang_ext.launch_server --model-path /tmp/m235 --load-format dummy --tp-size 8 "
    "--single-expert-mode dp": "needs 8 GPUs (235B shapes)",
    "torchrun --nproc-per-node 4 -m sglang_ext.engine --model-path M --chunk-size 128 --sync "
    'ring --prompt "..." --max-new-tokens 32': "M is a placeholder; the engine CLI is tested "
    "in tests/engine",
    "python -m sglang_ext.engine.launcher --nproc-per-node 4 -- --model-path M --chunk-size 128 "
    "--sync pairwise --prompt-len 2048": "M is a placeholder; the launcher is tested in "
    "tests/engine",
    "python -m sglang_ext.patch {status,check,apply,revert,list} [--target PATH]": _SUMMARY,
    "python -m sglang_ext.launch_server [--single-expert-mode {dp,tp}] [sglang flags]": _SUMMARY,
    "python -m sglang_ext.engine ...": _SUMMARY,
    "python -m sglang_ext.prune SRC DST --expert {INDEX,most-used,mean}": _SUMMARY,
    "python bench/<script>.py --help": _SUMMARY,
    "python -m sglang_ext.launch_server": "serves until stopped; tested in tests/e2e",
    "python bench/serve_load.py --base-url http://127.0.0.1:30000 --qps 8 --num-prompts 64 "
    "--sequence-length 512 --output-length 64": "needs a server on :30000; the same flags run "
    "against the fake server in tests/perf/serving/test_loadgen.py",
    'python bench/compare_ep_tp.py --server-args "--tp-size 2" --configs "dp:--single-expert-'
    'mode dp" "tp:--single-expert-mode tp" --qps 2 8 inf': "launches two TP-2 servers and "
    "loads each at three rates: minutes on CPU; tested in tests/perf/serving/test_compare.py",
    "python bench/bw_device.py": "sweeps copies up to 1 GiB: over a minute on CPU",
    "torchrun --nproc-per-node 8 bench/bw_collectives.py": "8 ranks, sizes up to 1 GiB",
    "python -m sglang_ext.profile --tp-size 2 --single-expert-mode tp --phase prefill": "two "
    "ranks of the real patched sglang: about a minute on CPU; tested in tests/profile",
    "python -m sglang_ext.profile.report bench/results/profile.jsonl": "needs the records the "
    "profile command writes; the report is tested in tests/profile",
    "python -m sglang_ext.profile": "the command name (its use follows in the table)",
    "python bench/decode_budget.py": "GPU (CUDA graphs, the real presets)",
    "python bench/bench_standin_ops.py": "GPU benchmark of the stand-in's Triton ops",
    "bash bench/fused_mlp_h200.sh": "the GPU session of the fused MLP (CUDA only)",
    "bash bench/standin_ops_h200.sh": "GPU: flashinfer vs the Triton stand-in ops (CUDA only)",
    "bash bench/sp_pp_h200.sh": "GPU: the engine vs sglang's prefill, 30B shape (CUDA only)",
    "python -m sglang_ext.study quick": "the whole quick study: ~4-5 minutes on 2 cores; the "
    "runner is tested on a reduced config in tests/study",
    "python -m sglang_ext.study quick --out-dir /tmp/studyq": "the same into /tmp, timed",
    "python bench/bench_sp_pp.py --prompt-lens 2048,4096 --nprocs 1,2 --syncs pairwise,ring "
    "--sglang ''": "three CPU sweeps of 80 s each made the committed records; the sweep is "
    "tested in tests/engine",
    "python -m sglang_ext.study comprehensive --config bench/study_8gpu.toml": _GPU8,
    "python -m sglang_ext.study quick --only serving,report --out-dir /tmp/study --resume": "a "
    "serving study on CPU (minutes); --only/--resume are tested in tests/study",
    "python -m sglang_ext.study {check,quick,comprehensive}": _SUMMARY,
    "pip install .": "an install; a wheel install is tested in tests/patching/test_wheel.py",
    "pip install git+...": _SUMMARY,
    "bash bench/gpu_session.sh": "the GPU session (CUDA only)",
    "pre-commit run -a": "fetches the hook environments from the network",
}


def _norm(cmd: str) -> str:
    return " ".join(cmd.split())


def readme_commands(text: str) -> list[str]:
    """Commands in README text: ```bash block lines, and inline spans starting a command."""
    cmds: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in re.sub(r"\\\n\s*", " ", block).splitlines():
            line = "" if line.lstrip().startswith("#") else line.split(" # ")[0]
            if line.strip():
                cmds.append(_norm(line))
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    cmds += [_norm(s) for s in re.findall(r"`([^`\n]+)`", prose) if re.match(CMD_WORDS, s)]
    return list(dict.fromkeys(cmds))


RUN_N = {_norm(c): t for c, t in RUN.items()}
EXCLUDED_N = {_norm(c): r for c, r in EXCLUDED.items()}
README_CMDS = readme_commands((ROOT / "README.md").read_text())


def test_parser_on_a_sample():
    text = (
        "Run `python -m a --x 1` or `pip`.\n```bash\n# comment\npython b.py \\\n  --y 2  "
        "# trailing\n```\n| q | `torchrun --nproc-per-node 2 c.py` |\n```python\nnot_me()\n```\n"
    )
    assert readme_commands(text) == [
        "python b.py --y 2",
        "python -m a --x 1",
        "torchrun --nproc-per-node 2 c.py",
    ]


def test_every_readme_command_is_classified():
    assert not set(RUN_N) & set(EXCLUDED_N), "a command is both run and excluded"
    unknown = [c for c in README_CMDS if c not in RUN_N and c not in EXCLUDED_N]
    assert not unknown, (
        "README.md commands neither run nor excluded in tests/test_readme.py (add each to "
        "RUN, or to EXCLUDED with the reason):\n  " + "\n  ".join(unknown)
    )
    stale = [c for c in (*RUN_N, *EXCLUDED_N) if c not in README_CMDS]
    assert not stale, "entries no longer in README.md (remove them):\n  " + "\n  ".join(stale)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Run every RUN command found in the README, 3 at a time: {command: (rc, output)}."""
    work = tmp_path_factory.mktemp("readme_root")
    shutil.copytree(ROOT / "bench", work / "bench")
    for name in ("sglang_ext", "tests", "patches", "pyproject.toml", "README.md"):
        (work / name).symlink_to(ROOT / name)
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=os.pathsep.join([bindir, os.environ.get("PATH", "")]))

    def run(cmd: str) -> tuple[int, str]:
        try:
            p = subprocess.run(
                ["bash", "-c", cmd],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                timeout=RUN_N[cmd],
            )
        except subprocess.TimeoutExpired as e:
            return 124, f"timed out after {RUN_N[cmd]} s\n{e.stdout or ''}{e.stderr or ''}"
        return p.returncode, p.stdout + p.stderr

    todo = [c for c in README_CMDS if c in RUN_N]
    with ThreadPoolExecutor(3) as pool:
        return dict(zip(todo, pool.map(run, todo), strict=True))


@pytest.mark.parametrize("cmd", [c for c in README_CMDS if c in RUN_N])
def test_readme_command_runs_as_written(results, cmd):
    rc, out = results[cmd]
    assert rc == 0, f"`{cmd}` exited {rc}:\n{out[-3000:]}"
