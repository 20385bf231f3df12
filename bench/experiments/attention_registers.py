"""(bench/experiments: a one-off measurement kept with its records,
bench/results/attention_registers_sm90.jsonl.)

Registers per thread of the one-launch decode attention (``kernels.decode_attention``) at
the 30B heads (8 query heads per KV head, head_dim 128, bf16 cache, 8 workspace splits),
compiled offline for sm_90 -- no GPU needed -- under each launch of the H200 table and a few
more.  Pointers and the row strides are marked 16-divisible as a launch on real tensors
specializes them (with that, the batch-32 launch gives ncu's 106 registers on the H200).
Needs the Triton of the GPU's stack (3.6) on the path, e.g.
``pip install --no-deps --target /tmp/t36 triton==3.6.0``::

    PYTHONPATH=/tmp/t36 python bench/experiments/attention_registers.py [--module M]

``--module`` (default ``sglang_ext.kernels.decode_attention``) names the kernel's module, so
a copy of an older version can be compared; one record per launch is appended to
``--output-file``.
"""

import argparse
import importlib
import inspect
import re
import subprocess
import tempfile
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

LAUNCHES = [(128, 8, 2), (32, 4, 3), (64, 4, 3), (32, 4, 2), (64, 4, 2)]
"""(BLOCK_N, num_warps, num_stages): the H200 table's batch 1-8, 32 and 64-128 launches,
then sglang's and one more."""
KINDS = {
    "*bf16": ("q_ptr", "k_ptr", "v_ptr", "qw_ptr", "kw_ptr", "kc_ptr", "vc_ptr", "o_ptr",
              "cs_ptr"),
    "*i64": ("pos_ptr", "loc_ptr"),
    "*i32": ("kv_indptr", "kv_indices", "num_kv_splits", "ticket_ptr"),
    "*fp32": ("mid_o", "mid_lse"),
    "fp32": ("eps", "sm_scale"),
}  # fmt: skip
DIV16 = ("s_qt", "s_kt", "s_vt", "s_cs", "s_ct", "s_ch", "s_mb", "s_mh", "s_ms", "s_lb",
         "s_lh", "s_ot", "half")  # fmt: skip
CONSTS = dict(GROUP=8, BLOCK_H=16, BLOCK_R=64, BLOCK_D=128, MAX_SPLITS=8, BLOCK_S=8,
              MIN_BLOCK=32, DOT="tf32", PDL=False)  # fmt: skip


def resources(kernel, block_n: int, num_warps: int, num_stages: int) -> dict:
    names = list(inspect.signature(kernel.fn).parameters)
    kind = {n: k for k, ns in KINDS.items() for n in ns}
    sig = {n: "constexpr" if n.isupper() else kind.get(n, "i32") for n in names}
    consts = {**CONSTS, "BLOCK_N": block_n}
    div = [n for n in names if sig[n].startswith("*") or n in DIV16]
    src = ASTSource(
        kernel,
        sig,
        constexprs={(names.index(n),): v for n, v in consts.items()},
        attrs={(names.index(n),): [["tt.divisibility", 16]] for n in div},
    )
    ck = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                        options={"num_warps": num_warps, "num_stages": num_stages})  # fmt: skip
    cuobjdump = Path(triton.__file__).parent / "backends/nvidia/bin/cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(ck.asm["cubin"])
        f.flush()
        usage = subprocess.run([str(cuobjdump), "-res-usage", f.name], capture_output=True,
                               text=True, check=True, timeout=60).stdout  # fmt: skip
    regs, stack = map(int, re.search(r"REG:(\d+) STACK:(\d+)", usage).groups())
    allocated = -(-regs // 8) * 8  # an SM hands out registers per thread in eights
    return {"regs": regs, "stack": stack, "smem": ck.metadata.shared,
            "programs_per_sm_by_regs": 65536 // (allocated * 32 * num_warps)}  # fmt: skip


def main() -> None:
    from sglang_ext.perf.records import append_jsonl, make_record

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    p.add_argument("--module", default="sglang_ext.kernels.decode_attention")
    p.add_argument("--output-file", default="bench/results/attention_registers_sm90.jsonl")
    args = p.parse_args()
    kernel = importlib.import_module(args.module)._decode_attention_kernel
    for bn, w, s in LAUNCHES:
        config = {"module": args.module, "target": "cuda sm_90", "launch": f"n{bn}w{w}s{s}",
                  **{k: v for k, v in CONSTS.items() if k != "PDL"}}  # fmt: skip
        metrics = resources(kernel, bn, w, s)
        append_jsonl(args.output_file, make_record("attention_registers", config, metrics))
        print(config["launch"], metrics, flush=True)


if __name__ == "__main__":
    main()
