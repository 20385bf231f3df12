"""The fused-MLP kernel bench and tuner (bench code, not kernels: those are in ``kernels/``).

- ``mlp``: time every implementation of one MLP shard call per (model, TP, M) point.
- ``sglang_baseline``: sglang 0.4.7's ``fused_experts`` at E=1 as a baseline.
- ``tune``: candidate launch configs, their timings, the tuned and dispatch tables.
- ``roofline``: rotating input sets, device ceilings and the roofline / weight floors.
"""
