"""The Triton skinny GEMM (sglang_ext.kernels.gemv) against cuBLAS's F.linear at the decode
step's attention linears, M = 1..32 tokens, on the GPU: graph medians, the weight-read floor,
errors vs fp32.

python bench/bench_gemv.py                                     # 8 shapes x M 1..32 x 11 launches
python bench/bench_gemv.py --shapes qwen3-30b-o qwen3-235b-qkv@tp4 --batch-sizes 1 8 \
    --configs n16k512w4s3d1 n32k256w4s3d1 n16k512w4s2d0
Records: bench/results/<gpu>/gemv.jsonl (config.shape, n, k, m, kernel, gemv_config,
is_default; metrics median_us, floor_us, ratio_to_floor, speedup_vs_cublas,
max_rel_err_vs_fp32).
"""

import sys

from sglang_ext.perf.kernel_bench.gemv import main

if __name__ == "__main__":
    sys.exit(main())
