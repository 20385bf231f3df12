"""Child process (TRITON_INTERPRET=1 set by the parent): the decode-attention bench's pieces
against independent references, on the CPU.  Prints one JSON line {case: error | None}.

* ``splits``: :func:`sglang_kv_splits` against sglang's own ``get_num_kv_splits_triton``
  run under the interpreter, over batch sizes, lengths, head layouts, SM counts, caps;
* ``attn-<config>-<splits>``: :func:`grouped_decode` (sglang's stage 1 launched with that
  config, then its stage 2) on float32 inputs with scattered cache slots and uneven lengths,
  against a float64 softmax attention over each sequence's tokens (tolerance 1e-5, as the
  patch-0016 check: float32 scores over at most 70 tokens).
"""

import json

import torch

from sglang_ext.perf.kernel_bench.sglang_baseline import activate_sglang

activate_sglang()
import sglang.srt.layers.quantization  # noqa: E402, F401  (breaks an import cycle of sglang)
import triton  # noqa: E402
from sglang.srt.layers.attention.triton_backend import get_num_kv_splits_triton  # noqa: E402

from sglang_ext.perf.kernel_bench.decode_attention import (  # noqa: E402
    AttnBenchArgs,
    Stage1Config,
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


if __name__ == "__main__":
    res = {"splits": splits(), "bench_rows": bench_rows()}
    for cfg, n in CASES:
        res[f"attn-{cfg.name}-{n}"] = attention(cfg, n)
    print(json.dumps(res))
