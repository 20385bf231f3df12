"""Child process: sglang's Triton decode attention from the tree on PYTHONPATH, two ways.

usage: python _decode_attention_worker.py ttir | interpret   (prints one JSON line)

``ttir``: lowers both stage-1 kernels and stage 2 to Triton IR for sm90 with ``sm_scale``
typed fp64, as dynamo passes a Python float under torch.compile (no GPU needed: the
loop-carried type check runs while the kernel is lowered).  {kernel: null | error}.
``interpret`` (TRITON_INTERPRET=1 set by the parent): ``decode_attention_fwd`` on float32
inputs, MHA (normal kernel) and GQA (grouped kernel), against a float64 softmax attention
over each sequence's cached tokens.  {case: max abs error}.
"""

import inspect
import json
import sys

import torch


def ttir() -> dict:
    import triton._C.libtriton as lt
    from sglang.srt.layers.attention.triton_ops import decode_attention as da
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    from triton.compiler.compiler import make_backend

    target = GPUTarget("cuda", 90, 32)
    backend = make_backend(target)
    opts = backend.parse_options({})
    ptr = {"Q": "*bf16", "K_Buffer": "*bf16", "V_Buffer": "*bf16", "sm_scale": "fp64",
           "Mid_O": "*fp32", "Mid_O_1": "*fp32", "O": "*bf16", "Att_Out": "*fp32",
           "Att_Lse": "*fp32", "kv_indptr": "*i32", "kv_indices": "*i32",
           "num_kv_splits": "*i32", "logits": "*fp32", "lse": "*fp32"}  # fmt: skip
    consts = {"kv_group_num": 4, "q_head_num": 4, "BLOCK_DMODEL": 64, "BLOCK_DPE": 0,
              "BLOCK_DV": 64, "BLOCK_N": 32, "BLOCK_H": 16, "MIN_BLOCK_KV": 32,
              "MAX_KV_SPLITS": 8, "logit_cap": 0.0, "Lk": 64, "Lv": 64}  # fmt: skip
    out = {}
    for name in ("_fwd_kernel_stage1", "_fwd_grouped_kernel_stage1", "_fwd_kernel_stage2"):
        fn = getattr(da, name)
        sig = {a: "constexpr" if a in consts else ptr.get(a, "i32") for a in fn.arg_names}
        cx = {(fn.arg_names.index(a),): consts[a] for a in fn.arg_names if a in consts}
        src = ASTSource(fn, sig, constexprs=cx)
        ctx = lt.ir.context()
        lt.ir.load_dialects(ctx)
        backend.load_dialects(ctx)
        args = [opts, backend.get_codegen_implementation(opts), backend.get_module_map(), ctx]
        if "target" in inspect.signature(src.make_ir).parameters:  # newer Triton
            args.insert(0, target)
        try:
            src.make_ir(*args)
            out[name] = None
        except Exception as e:
            out[name] = f"{type(e).__name__}: {e}"[-600:]
    return out


def interpret() -> dict:
    from sglang.srt.layers.attention.triton_ops.decode_attention import decode_attention_fwd

    from sglang_ext.perf.kernel_bench.decode_attention import reference, scattered_cache

    g = torch.Generator().manual_seed(0)
    lens, d, splits, res = [37, 70, 1], 64, 2, {}
    for case, (h, hkv) in {"mha": (2, 2), "gqa": (4, 1)}.items():
        b = len(lens)
        q, k, v, indptr, perm = scattered_cache(lens, h, hkv, d, generator=g)
        o = torch.full((b, h, d), float("nan"))
        logits = torch.empty(b, h, splits, d)
        lse = torch.empty(b, h, splits)
        nsplit = torch.full((b,), splits, dtype=torch.int32)
        decode_attention_fwd(q, k, v, o, indptr, perm, logits, lse, nsplit, splits, d**-0.5)
        res[case] = (o.double() - reference(q, k, v, indptr, perm)).abs().max().item()
    return res


if __name__ == "__main__":
    print(json.dumps(ttir() if sys.argv[1] == "ttir" else interpret()))
