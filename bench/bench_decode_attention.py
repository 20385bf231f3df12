"""sglang 0.4.7's Triton GQA decode attention (stage 1 + stage 2) on the GPU, per batch size:
its KV-split rule and other stage-1 launches, against the KV-read floor and fp32; with
--fused, our one-launch decode attention against the three kernels it replaces.

python bench/bench_decode_attention.py                         # both presets, batch 1..128
python bench/bench_decode_attention.py --presets qwen3-30b-a3b-1e --batch-sizes 32 128 \
    --configs n32w4s2 n64w4s3 --splits sglang 8
python bench/bench_decode_attention.py --fused --batch-sizes 1 8 32   # patch 0024's kernel
Records: bench/results/<gpu>/decode_attention.jsonl (config.stage1, config.kv_splits,
config.is_sglang_default; metrics median_us, floor_us, speedup_vs_sglang_default);
with --fused decode_attention_fused.jsonl (config.kernel: the one launch or the three
kernels it replaces; metrics median_us, speedup_vs_three_kernels,
max_rel_diff_vs_three_kernels).
"""

import sys

from sglang_ext.perf.kernel_bench.decode_attention import main

if __name__ == "__main__":
    sys.exit(main())
