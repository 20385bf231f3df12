"""Child process (TRITON_INTERPRET=1 set by the parent): the decode-attention bench's pieces
against independent references, on the CPU.  Prints one JSON line {case: error | None}.

* ``splits``: :func:`sglang_kv_splits` against sglang's own ``get_num_kv_splits_triton``
  run under the interpreter, over batch sizes, lengths, head layouts, SM counts, caps;
* ``attn-<config>-<splits>``: :func:`grouped_decode` (sglang's stage 1 launched with that
  config, then its stage 2) on float32 inputs with scattered cache slots and uneven lengths,
  against a float64 softmax attention over each sequence's tokens (tolerance 1e-5, as the
  patch-0016 check: float32 scores over at most 70 tokens).
* ``fused-2``: :func:`bench_fused_point` on float32 (a fake timer): our one-launch
  decode attention (patch 0024) at batch 2, at sglang's split count and at 16 (past the
  workspace sglang sizes), against the three kernels it replaces,
  ``qk_norm_rope`` with the KV write, then sglang's own stage 1 and stage 2 (tolerance 1e-5);
  the row layout and speed-ups from the timer's answers.
* ``patched-<batch>``: the patched sglang's own ``decode_attention_fwd_grouped`` (patch 0019)
  at that batch, its launch answered as the H200 table answers it, against float64; and with
  an impossible launch (BLOCK_N=24) answered instead, it must fail: the launch is used.
"""

import json

import torch

from sglang_ext.perf.kernel_bench.sglang_baseline import activate_sglang

activate_sglang()
import sglang.srt.layers.quantization  # noqa: E402, F401  (breaks an import cycle of sglang)
import triton  # noqa: E402
from sglang.srt.layers.attention.triton_backend import get_num_kv_splits_triton  # noqa: E402
from sglang.srt.layers.attention.triton_ops import decode_attention as da  # noqa: E402

from sglang_ext.kernels.decode_attention_launch import launch_for  # noqa: E402
from sglang_ext.perf.kernel_bench.decode_attention import (  # noqa: E402
    SGLANG_STAGE1,
    AttnBenchArgs,
    Stage1Config,
    bench_fused_point,
    bench_point,
    grouped_decode,
    reference,
    scattered_cache,
    sglang_kv_splits,
)

CASES = [(Stage1Config(32, 4, 2), n) for n in (1, 3, 8)] + [
    (Stage1Config(64, 4, 3), 3),
    (Stage1Config(16, 8, 2), 8),
]


def splits() -> str | None:
    bad = []
    for b in (1, 8, 32, 64, 128, 300):
        for seq in (1, 17, 100, 530, 4096):
            for h, hkv in ((32, 4), (64, 4), (8, 8)):
                for sm, cap in ((132, 8), (78, 16)):
                    got = torch.empty(b, dtype=torch.int32)
                    lens = torch.full((b,), seq, dtype=torch.int32)
                    sched = 256 if b < 256 else triton.next_power_of_2(b)
                    get_num_kv_splits_triton[(1,)](
                        got, lens, b, 1, h, hkv, cap, sm, MAX_NUM_SEQ=sched
                    )
                    want = sglang_kv_splits(
                        b, seq, num_heads=h, num_kv_heads=hkv, max_kv_splits=cap, sm_count=sm
                    )
                    if set(got.tolist()) != {want}:
                        bad.append(f"b={b} seq={seq} h={h}/{hkv} sm={sm} cap={cap}: "
                                   f"kernel {sorted(set(got.tolist()))}, ours {want}")  # fmt: skip
    return "; ".join(bad[:5]) or None


def attention(cfg: Stage1Config, n: int) -> str | None:
    g = torch.Generator().manual_seed(n)
    lens, maxs = [37, 70, 1], 8
    q, k, v, indptr, idx = scattered_cache(lens, 8, 2, 64, generator=g)
    ns = torch.full((len(lens),), n, dtype=torch.int32)
    out = torch.full_like(q, float("nan"))
    grouped_decode(q, k, v, indptr, idx, ns, maxs, config=cfg, out=out)
    err = (out.double() - reference(q, k, v, indptr, idx)).abs().max().item()
    return None if err < 1e-5 else f"max abs error {err:.2e}"


def bench_rows() -> str | None:
    """bench_point on the CPU (float32, a timer that answers 4, 2, 8, 1 us in turn): one row per
    config x split count, sglang's launch marked once, speed-ups against it, errors vs fp32."""
    args = AttnBenchArgs(presets=["qwen3-30b-a3b-1e"], batch_sizes=[1], context_len=40,
                         configs=["n32w4s2", "n64w4s3"], splits=["sglang", "3"])  # fmt: skip
    times = iter([4.0, 2.0, 8.0, 1.0])

    def timer(call, sets, rep_ms):
        return next(times)

    rows = bench_point("qwen3-30b-a3b-1e", 1, args, 1000.0, 132, device="cpu",
                       dtype=torch.float32, timer=timer, rotate_bytes=1 << 20)  # fmt: skip
    got = [(c["stage1"], c["kv_splits"], c["is_sglang_default"], m["speedup_vs_sglang_default"])
           for c, m in rows]  # fmt: skip
    # sglang's rule at 1 x 40 tokens on 132 SMs: 8 splits (32 heads over 4 KV heads)
    # speed-up = sglang's 2 us over each row's time
    want = [("n32w4s2", 3, False, 0.5), ("n32w4s2", 8, True, 1.0),
            ("n64w4s3", 3, False, 0.25), ("n64w4s3", 8, False, 2.0)]  # fmt: skip
    if got != want:
        return f"rows {got}, expected {want}"
    floor = 2 * 1 * 40 * 4 * 128 * 4 / 1e6  # K+V bytes, float32, over 1000 GB/s, in us
    bad = [
        m for _, m in rows if m["max_rel_err_vs_fp32"] > 1e-5 or abs(m["floor_us"] - floor) > 1e-9
    ]
    return f"{len(bad)} rows off: {bad[:1]}" if bad else None


def fused(batch: int) -> str | None:
    args = AttnBenchArgs(presets=["qwen3-30b-a3b-1e"], batch_sizes=[batch], context_len=45,
                         configs=["n64w4s3"], splits=["sglang", "16"], fused=True)  # fmt: skip
    times = iter([6.0, 3.0, 2.0])

    def timer(call, sets, rep_ms):
        call(sets[1])  # the other KV region runs too
        return next(times)

    rows = bench_fused_point("qwen3-30b-a3b-1e", batch, args, 1000.0, 132, device="cpu",
                             dtype=torch.float32, timer=timer, rotate_bytes=1 << 20)  # fmt: skip
    rule = sglang_kv_splits(batch, 45, num_heads=32, num_kv_heads=4, max_kv_splits=8,
                            sm_count=132)  # fmt: skip
    got = [(c["kernel"], c["stage1"], c["kv_splits"], m.get("speedup_vs_three_kernels"))
           for c, m in rows]  # fmt: skip
    want = [("qk_norm_rope+stage1+stage2", "n32w4s2", rule, None),
            ("fused", "n64w4s3", rule, 2.0), ("fused", "n64w4s3", 16, 3.0)]  # fmt: skip
    if rule == 16 or got != want:
        return f"rows {got}, expected {want}"
    diffs = [m["max_rel_diff_vs_three_kernels"] for _, m in rows[1:]]
    return None if max(diffs) < 1e-5 else f"one launch vs sglang's kernels: rel diff {diffs}"


PATCHED_BATCHES = (1, 3, 9)  # the H200 table's batch <= 1, <= 8 and <= 32 buckets
H200_TRITON = "3.6.0"  # the table's Triton (the interpreter here may be another)


def patched(batch: int) -> str | None:
    g = torch.Generator().manual_seed(batch)
    lens = [37, 70, 1, 12, 50, 5, 64, 33, 20][:batch]
    q, k, v, indptr, idx = scattered_cache(lens, 16, 2, 128, generator=g)  # group 8, as 30B
    maxs = 8
    ns = torch.tensor([min(maxs, 1 + n // 16) for n in lens], dtype=torch.int32)
    calls = []

    def run(answer) -> torch.Tensor:
        def spy(b, group, head_dim, device):
            calls.append((b, group, head_dim, str(device)))
            return answer(b, group, head_dim)

        saved, da.stage1_config = da.stage1_config, spy
        try:
            out = torch.full_like(q, float("nan"))
            logits = torch.empty(batch, 16, maxs, 128)
            lse = torch.empty(batch, 16, maxs)
            da.decode_attention_fwd_grouped(q, k, v, out, indptr, idx, logits, lse, ns, maxs,
                                            128**-0.5)  # fmt: skip
            return out
        finally:
            da.stage1_config = saved

    if launch_for(batch, 8, 128, "NVIDIA H200", triton_version=H200_TRITON) == SGLANG_STAGE1:
        return f"the H200 table gives sglang's own launch at batch {batch}: nothing is tested"

    def table(b, group, head_dim):
        c = launch_for(b, group, head_dim, "NVIDIA H200", triton_version=H200_TRITON)
        return c.block_n, c.num_warps, c.num_stages

    out = run(table)
    if calls != [(batch, 8, 128, "cpu")]:
        return f"stage1_config calls {calls}, expected [({batch}, 8, 128, 'cpu')]"
    err = (out.double() - reference(q, k, v, indptr, idx)).abs().max().item()
    if not err < 1e-5:
        return f"max abs error {err:.2e} with the table's launch"
    try:
        run(lambda *a: (24, 4, 2))
    except Exception:  # noqa: BLE001 (Triton's error for a non-power-of-two arange)
        return None
    return "a BLOCK_N=24 launch ran: the patched launch ignores stage1_config's answer"


if __name__ == "__main__":
    res = {"splits": splits(), "bench_rows": bench_rows()}
    for cfg, n in CASES:
        res[f"attn-{cfg.name}-{n}"] = attention(cfg, n)
    for b in PATCHED_BATCHES:
        res[f"patched-{b}"] = patched(b)
    res["fused-2"] = fused(2)
    print(json.dumps(res))
