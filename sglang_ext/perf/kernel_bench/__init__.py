"""Kernel benches and the fused-MLP tuner (bench code, not kernels: those are in ``kernels/``).

- ``mlp``: time every implementation of one MLP shard call per (model, TP, M) point.
- ``sglang_baseline``: sglang 0.4.7's ``fused_experts`` at E=1 as a baseline.
- ``tune``: candidate launch configs, their timings, the tuned and dispatch tables.
- ``roofline``: rotating input sets, device ceilings and the roofline / weight floors.
- ``decode_attention``: sglang's Triton decode attention per stage-1 launch and split count
  (``bench/bench_decode_attention.py``; writes the stage-1 launch table).
- ``gemv``: the small-M linear kernel (``kernels/gemv.py``) against cuBLAS
  (``bench/bench_gemv.py``).
"""
